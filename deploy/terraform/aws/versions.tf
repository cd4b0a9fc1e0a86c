# AWS for the Kubernetes deployment: EKS, RDS PostgreSQL, the compute-log bucket, and Secrets Manager entries
# whose keys are the Kubernetes Secrets the charts read. Outputs feed the two charts' values (docs/deploy.md).
# Not planned or applied in this repository's tests (no terraform binary or providers offline): the tests parse
# every file and check that names line up.
terraform {
  # 1.10: the S3 backend locks state with a lock object in the bucket itself (use_lockfile), no DynamoDB table.
  required_version = ">= 1.10"

  # Remote state. The state holds every generated role and admin password (random_password), so it must not sit
  # in a local terraform.tfstate: it lives in a versioned, encrypted bucket of your own, locked while a plan or
  # apply runs. Partial configuration: bucket, key and region come from a file you keep beside the deployment,
  #   terraform init -backend-config=backend.hcl        (copy backend.hcl.example; docs/deploy.md)
  backend "s3" {
    encrypt      = true
    use_lockfile = true
  }

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.60"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
  }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = merge(var.tags, { "app.kubernetes.io/part-of" = "data-aggregator" })
  }
}
