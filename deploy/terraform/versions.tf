# fraudflow on AWS: the scoring flow as one ECS Fargate service per Bytewax
# process, RDS PostgreSQL, ElastiCache Redis, EFS for recovery partitions, in
# a private network. Kafka is an existing cluster (for example Amazon MSK)
# reached through var.kafka_bootstrap_servers.

terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project     = "fraudflow"
      Environment = var.environment
    }
  }
}
