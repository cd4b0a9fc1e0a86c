# One password per PostgreSQL role (deploy/postgres-init/roles.psql), and one Secrets Manager entry per
# Kubernetes Secret the charts read, with exactly that Secret's keys. Sync them into the namespace with the
# External Secrets Operator or the loop in docs/deploy.md. The roles themselves are created by running
# roles.psql against the instance (Terraform has no network path into the VPC's database).
resource "random_password" "db" {
  for_each = toset(["dagster", "warehouse", "aggregator_proxy", "aggregator_backup", "aggregator_specs_reader"])
  length   = 32
  special  = false # the passwords go into URLs
}

# The proxy's credential for the worker (both read secret aggregator-worker-token).
resource "random_password" "worker" {
  length  = 32
  special = false
}

resource "random_password" "admin" {
  length  = 24
  special = false
}

locals {
  db_url = {
    for role in ["dagster", "warehouse", "aggregator_proxy"] :
    role => "postgresql://${role}:${random_password.db[role].result}@${aws_db_instance.this.address}:5432/${role}?sslmode=require"
  }

  kubernetes_secrets = {
    # The Dagster instance of the webserver, daemon, code server and run pods.
    "aggregator-dagster-db" = {
      DAGSTER_PG_URL = local.db_url["dagster"]
    }
    # IRSA supplies the bucket credentials (aws_iam_role.compute_logs); the Secret exists because the pods
    # reference it, and stays empty.
    "aggregator-compute-logs" = {}
    "aggregator-proxy" = {
      AGGREGATOR_PROXY_DB_URL   = replace(local.db_url["aggregator_proxy"], "postgresql://", "postgresql+psycopg://")
      AGGREGATOR_ADMIN_PASSWORD = random_password.admin.result
    }
    # The spec store (in the proxy's database) as the role that may only read it: code server, run pods, worker.
    "aggregator-specs" = {
      AGGREGATOR_SPECS_DB_URL = "postgresql+psycopg://aggregator_specs_reader:${random_password.db["aggregator_specs_reader"].result}@${aws_db_instance.this.address}:5432/aggregator_proxy?sslmode=require"
    }
    "aggregator-worker-token" = {
      AGGREGATOR_WORKER_TOKEN = random_password.worker.result
    }
    "aggregator-migrate" = {
      DAGSTER_PG_URL = local.db_url["dagster"]
    }
    "aggregator-retention" = {
      DAGSTER_PG_URL = local.db_url["dagster"]
    }
    "aggregator-backup" = {
      PGHOST     = aws_db_instance.this.address
      PGPORT     = "5432"
      PGUSER     = "aggregator_backup"
      PGPASSWORD = random_password.db["aggregator_backup"].result
      PGSSLMODE  = "require"
    }
  }

  # Connector credentials are added to this one by hand after creation, so Terraform seeds it and then leaves
  # its value alone (see aws_secretsmanager_secret_version.runs).
  runs_secret = {
    AGGREGATOR_WAREHOUSE_URL = replace(local.db_url["warehouse"], "postgresql://", "postgresql+psycopg://")
  }
}

resource "aws_secretsmanager_secret" "k8s" {
  for_each                = local.kubernetes_secrets
  name                    = "${var.name}/${each.key}"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "k8s" {
  for_each      = local.kubernetes_secrets
  secret_id     = aws_secretsmanager_secret.k8s[each.key].id
  secret_string = jsonencode(each.value)
}

resource "aws_secretsmanager_secret" "runs" {
  name                    = "${var.name}/aggregator-runs"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "runs" {
  secret_id     = aws_secretsmanager_secret.runs.id
  secret_string = jsonencode(local.runs_secret)
  lifecycle {
    ignore_changes = [secret_string]
  }
}
