variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-west-1"
}

variable "environment" {
  description = "Environment name, used in resource names and tags."
  type        = string
  default     = "prod"
}

variable "availability_zones" {
  description = "Two availability zones of var.region for the subnets, named explicitly so the network never changes shape when AWS adds a zone."
  type        = list(string)
  default     = ["eu-west-1a", "eu-west-1b"]

  validation {
    condition     = length(var.availability_zones) >= 2
    error_message = "Give at least two availability zones: RDS and ElastiCache need subnets in two."
  }
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC; split into two public and two private subnets."
  type        = string
  default     = "10.40.0.0/16"
}

variable "image" {
  description = "Container image of the flow, pinned by digest (repo@sha256:...)."
  type        = string
}

variable "process_count" {
  description = "Bytewax processes (one ECS service each). At most the topic partition count; changing it is a stop-and-restart."
  type        = number
  default     = 2

  validation {
    condition     = var.process_count >= 1 && var.process_count <= 32
    error_message = "process_count must be between 1 and 32."
  }
}

variable "recovery_partitions" {
  description = "Bytewax recovery partitions, fixed at the first deploy. Keep it at most the smallest process_count you will ever run."
  type        = number
  default     = 2
}

variable "task_cpu" {
  description = "CPU units of one flow task (1024 = one vCPU)."
  type        = number
  default     = 1024
}

variable "task_memory" {
  description = "Memory of one flow task in MiB."
  type        = number
  default     = 2048
}

variable "kafka_bootstrap_servers" {
  description = "Bootstrap servers of the existing Kafka cluster."
  type        = string
}

variable "kafka_cidr_blocks" {
  description = "CIDR blocks where the Kafka brokers listen; the flow may reach them on var.kafka_port only."
  type        = list(string)
}

variable "kafka_port" {
  description = "Port of the Kafka brokers."
  type        = number
  default     = 9092
}

variable "metrics_cidr_blocks" {
  description = "CIDR blocks of the Prometheus servers allowed to scrape port 3030."
  type        = list(string)
  default     = []
}

variable "db_instance_class" {
  description = "RDS instance class of the scored-transactions database."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_allocated_storage" {
  description = "Initial RDS storage in GiB; autoscaling may grow it to four times this."
  type        = number
  default     = 50
}

variable "redis_node_type" {
  description = "ElastiCache node type of the online feature store."
  type        = string
  default     = "cache.t4g.small"
}

variable "log_retention_days" {
  description = "Retention of the flow's CloudWatch logs and VPC flow logs."
  type        = number
  default     = 365
}
