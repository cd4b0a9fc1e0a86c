locals {
  subnet_cidrs = [for subnet in data.aws_subnet.private : subnet.cidr_block]

  # --values for deploy/helm/aggregator (keys checked against its values.yaml by the tests).
  aggregator_chart_values = {
    database = {
      host  = aws_db_instance.this.address
      port  = 5432
      cidrs = local.subnet_cidrs
    }
    # With the VPC CNI, Ingress controller pods have VPC addresses.
    proxy = {
      trustedProxies = [data.aws_vpc.this.cidr_block]
    }
    # The private API endpoint's network interfaces sit in the cluster's subnets.
    kubernetesApi = {
      cidrs = local.subnet_cidrs
    }
    # The EBS CSI add-on's gp3 class for the backup volume (addons.tf).
    backup = {
      persistence = {
        storageClass = "aggregator-backups"
        createStorageClass = {
          provisioner = "ebs.csi.aws.com"
        }
      }
    }
    computeLogs = {
      bucket = aws_s3_bucket.compute_logs.id
      region = var.region
    }
    # IRSA for the compute-log bucket, on both accounts that touch it.
    serviceAccounts = {
      dagster = {
        annotations = { "eks.amazonaws.com/role-arn" = aws_iam_role.compute_logs.arn }
      }
      userCode = {
        annotations = { "eks.amazonaws.com/role-arn" = aws_iam_role.compute_logs.arn }
      }
    }
  }
}

output "cluster_name" {
  description = "aws eks update-kubeconfig --name <this>"
  value       = aws_eks_cluster.this.name
}

output "database_address" {
  description = "RDS endpoint; run deploy/postgres-init/roles.psql against it once (docs/deploy.md)."
  value       = aws_db_instance.this.address
}

output "database_master_secret_arn" {
  description = "The RDS-managed superuser secret (only for creating the roles)."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "compute_logs_role_arn" {
  description = "Already in aggregator_chart_values: the IRSA role of both chart service accounts."
  value       = aws_iam_role.compute_logs.arn
}

output "kubernetes_secret_ids" {
  description = "Secrets Manager entry per Kubernetes Secret name."
  value = merge(
    { for name, secret in aws_secretsmanager_secret.k8s : name => secret.id },
    { "aggregator-runs" = aws_secretsmanager_secret.runs.id },
  )
}

output "aggregator_chart_values" {
  description = "terraform output -raw aggregator_chart_values > aggregator-aws.yaml; helm ... -f aggregator-aws.yaml"
  value       = yamlencode(local.aggregator_chart_values)
}
