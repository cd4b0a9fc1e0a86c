# AWS for the Kubernetes deployment: EKS, RDS PostgreSQL, the compute-log bucket, and Secrets Manager entries
# whose keys are the Kubernetes Secrets the charts read. Outputs feed the two charts' values (docs/deploy.md).
# Not planned or applied in this repository's tests (no terraform binary or providers offline): the tests parse
# every file and check that names line up.
terraform {
  required_version = ">= 1.6"
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
