# Step logs (S3ComputeLogManager): written by run pods, read by the webserver.
resource "aws_s3_bucket" "compute_logs" {
  bucket_prefix = "${var.name}-compute-logs-"
}

resource "aws_s3_bucket_public_access_block" "compute_logs" {
  bucket                  = aws_s3_bucket.compute_logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "compute_logs" {
  bucket = aws_s3_bucket.compute_logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "compute_logs" {
  bucket = aws_s3_bucket.compute_logs.id
  rule {
    id     = "expire-step-logs"
    status = "Enabled"
    filter {
      prefix = "compute-logs/"
    }
    expiration {
      days = var.compute_log_retention_days
    }
  }
}

# The chart's two service accounts (aggregator-dagster: the webserver reads; aggregator-user-code: run pods
# write) may use this bucket and nothing else. IRSA's web-identity token has the STS audience: it is no
# credential for the Kubernetes API, so run pods still have none.
data "aws_iam_policy_document" "compute_logs_assume" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.this.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${replace(aws_iam_openid_connect_provider.this.url, "https://", "")}:sub"
      values = [
        "system:serviceaccount:${var.namespace}:aggregator-dagster",
        "system:serviceaccount:${var.namespace}:aggregator-user-code",
      ]
    }
    condition {
      test     = "StringEquals"
      variable = "${replace(aws_iam_openid_connect_provider.this.url, "https://", "")}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "compute_logs" {
  name               = "${var.name}-compute-logs"
  assume_role_policy = data.aws_iam_policy_document.compute_logs_assume.json
}

data "aws_iam_policy_document" "compute_logs" {
  statement {
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${aws_s3_bucket.compute_logs.arn}/compute-logs/*"]
  }
  statement {
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.compute_logs.arn]
  }
  statement {
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this.arn]
  }
}

resource "aws_iam_role_policy" "compute_logs" {
  role   = aws_iam_role.compute_logs.id
  policy = data.aws_iam_policy_document.compute_logs.json
}
