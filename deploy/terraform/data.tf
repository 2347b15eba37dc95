# Data stores: PostgreSQL for scored transactions, Redis for online features,
# EFS for Bytewax recovery partitions. All encrypted with the project key.

data "aws_caller_identity" "current" {}

resource "aws_kms_key" "main" {
  description         = "fraudflow ${var.environment}: data at rest, logs and secrets"
  enable_key_rotation = true
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministers"
        Effect    = "Allow"
        Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsEncrypt"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
      },
    ]
  })
}

resource "aws_db_subnet_group" "main" {
  name       = local.name
  subnet_ids = aws_subnet.private[*].id
}

# The master password is generated and rotated by RDS in Secrets Manager
# (manage_master_user_password), so it never appears in Terraform state.
resource "aws_db_instance" "main" {
  identifier                            = local.name
  engine                                = "postgres"
  engine_version                        = "17"
  instance_class                        = var.db_instance_class
  allocated_storage                     = var.db_allocated_storage
  max_allocated_storage                 = var.db_allocated_storage * 4
  db_name                               = "fraudflow"
  username                              = "fraudflow"
  manage_master_user_password           = true
  master_user_secret_kms_key_id         = aws_kms_key.main.key_id
  db_subnet_group_name                  = aws_db_subnet_group.main.name
  vpc_security_group_ids                = [aws_security_group.database.id]
  storage_encrypted                     = true
  kms_key_id                            = aws_kms_key.main.arn
  multi_az                              = true
  backup_retention_period               = 14
  deletion_protection                   = true
  skip_final_snapshot                   = false
  final_snapshot_identifier             = "${local.name}-final"
  copy_tags_to_snapshot                 = true
  auto_minor_version_upgrade            = true
  iam_database_authentication_enabled   = true
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.main.arn
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  parameter_group_name                  = aws_db_parameter_group.main.name
  performance_insights_retention_period = 7
}

resource "aws_db_parameter_group" "main" {
  name   = local.name
  family = "postgres17"

  parameter {
    name  = "log_min_duration_statement"
    value = "250"
  }

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name = "${local.name}-rds-monitoring"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "monitoring.rds.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_elasticache_subnet_group" "main" {
  name       = local.name
  subnet_ids = aws_subnet.private[*].id
}

# ElastiCache takes the AUTH token as a plain argument, so this one secret is
# in Terraform state: keep the state in an encrypted, access-controlled backend.
resource "random_password" "redis" {
  length  = 48
  special = false
}

resource "aws_elasticache_replication_group" "main" {
  replication_group_id       = local.name
  description                = "fraudflow online feature store"
  engine                     = "redis"
  engine_version             = "7.1"
  node_type                  = var.redis_node_type
  num_cache_clusters         = 2
  automatic_failover_enabled = true
  multi_az_enabled           = true
  port                       = 6379
  subnet_group_name          = aws_elasticache_subnet_group.main.name
  security_group_ids         = [aws_security_group.redis.id]
  at_rest_encryption_enabled = true
  kms_key_id                 = aws_kms_key.main.arn
  transit_encryption_enabled = true
  auth_token                 = random_password.redis.result
  snapshot_retention_limit   = 3
  auto_minor_version_upgrade = true
}

resource "aws_efs_file_system" "recovery" {
  creation_token = "${local.name}-recovery"
  encrypted      = true
  kms_key_id     = aws_kms_key.main.arn

  tags = { Name = "${local.name}-recovery" }
}

resource "aws_efs_backup_policy" "recovery" {
  file_system_id = aws_efs_file_system.recovery.id

  backup_policy {
    status = "ENABLED"
  }
}

resource "aws_efs_mount_target" "recovery" {
  count           = length(aws_subnet.private)
  file_system_id  = aws_efs_file_system.recovery.id
  subnet_id       = aws_subnet.private[count.index].id
  security_groups = [aws_security_group.efs.id]
}

# One directory per process, owned by the image's non-root user.
resource "aws_efs_access_point" "recovery" {
  count          = var.process_count
  file_system_id = aws_efs_file_system.recovery.id

  posix_user {
    uid = 10001
    gid = 10001
  }

  root_directory {
    path = "/recovery/process-${count.index}"

    creation_info {
      owner_uid   = 10001
      owner_gid   = 10001
      permissions = "0750"
    }
  }
}
