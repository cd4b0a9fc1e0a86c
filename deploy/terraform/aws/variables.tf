variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "data-aggregator"
}

variable "region" {
  description = "AWS region, e.g. eu-central-1."
  type        = string
}

variable "vpc_id" {
  description = "The VPC to deploy into (an existing one, with private subnets that have a NAT route out)."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (at least two availability zones) for the nodes and the database."
  type        = list(string)
}

variable "kubernetes_version" {
  description = "EKS version (the manifests are validated against 1.30 and the newest schema). Keep it in EKS standard support: a version past extended support can no longer be created."
  type        = string
  default     = "1.35"
  validation {
    condition     = can(regex("^1\\.[0-9]+$", var.kubernetes_version)) && tonumber(split(".", var.kubernetes_version)[1]) >= 33
    error_message = "kubernetes_version: EKS 1.33 or newer (1.32 and older are past standard support by 2026-12); got the value given."
  }
}

variable "node_instance_types" {
  description = "Instance types of the node group that runs the platform and the run pods."
  type        = list(string)
  default     = ["m6i.xlarge"]
}

variable "node_min_size" {
  description = "Fewest nodes."
  type        = number
  default     = 2
}

variable "node_max_size" {
  description = "Most nodes (bounds max_concurrent_runs: 250m CPU per run, docs/scaling.md)."
  type        = number
  default     = 10
}

variable "db_instance_class" {
  description = "RDS instance class; size for IOPS and connections before CPU (docs/scaling.md)."
  type        = string
  default     = "db.m6g.large"
}

variable "db_allocated_storage_gb" {
  description = "Initial storage; about 65 GB holds 30 days of history at 12,000 sample-sized runs a day."
  type        = number
  default     = 100
}

variable "db_max_allocated_storage_gb" {
  description = "Storage autoscaling ceiling."
  type        = number
  default     = 500
}

variable "db_backup_retention_days" {
  description = "RDS automated backups (point-in-time recovery), in addition to the chart's nightly pg_dump."
  type        = number
  default     = 14
}

variable "db_multi_az" {
  description = "A standby in a second availability zone."
  type        = bool
  default     = true
}

variable "compute_log_retention_days" {
  description = "Step logs in the bucket expire after this many days (match retention.olderThanDays)."
  type        = number
  default     = 30
}

variable "namespace" {
  description = "Kubernetes namespace of both releases."
  type        = string
  default     = "dagster"
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
