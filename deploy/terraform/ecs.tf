# The flow on ECS Fargate: one service per Bytewax process, each with exactly
# one task, a stable Cloud Map name (flow-N.<namespace>) and its own EFS access
# point for recovery. Deployments stop the old task before starting the new one
# (minimum healthy 0 %, maximum 100 %): two tasks with one process id must
# never run at once.

locals {
  dns_namespace = "${local.name}.internal"
  addresses     = join(";", [for index in local.flows : "flow-${index}.${local.dns_namespace}:2101"])

  common_environment = [
    { name = "KAFKA_BOOTSTRAP_SERVERS", value = var.kafka_bootstrap_servers },
    { name = "DATABASE_URL", value = "postgresql://fraudflow@${aws_db_instance.main.address}:5432/fraudflow?sslmode=require" },
    { name = "FRAUDFLOW_LOG_FORMAT", value = "json" },
    { name = "BYTEWAX_ADDRESSES", value = local.addresses },
    { name = "BYTEWAX_RECOVERY_DIRECTORY", value = "/var/lib/fraudflow/recovery" },
    { name = "BYTEWAX_SNAPSHOT_INTERVAL", value = "10" },
    { name = "BYTEWAX_RECOVERY_BACKUP_INTERVAL", value = "300" },
    { name = "FRAUDFLOW_RECOVERY_PARTITIONS", value = tostring(var.recovery_partitions) },
  ]

  common_secrets = [
    { name = "FRAUDFLOW_HMAC_KEY", valueFrom = aws_secretsmanager_secret.hmac_key.arn },
    { name = "PGPASSWORD", valueFrom = "${aws_db_instance.main.master_user_secret[0].secret_arn}:password::" },
    { name = "REDIS_URL", valueFrom = aws_secretsmanager_secret.redis_url.arn },
  ]
}

resource "aws_ecs_cluster" "main" {
  name = local.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "flow" {
  name              = "/fraudflow/${var.environment}/flow"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_service_discovery_private_dns_namespace" "main" {
  name = local.dns_namespace
  vpc  = aws_vpc.main.id
}

resource "aws_service_discovery_service" "flow" {
  count = var.process_count
  name  = "flow-${count.index}"

  dns_config {
    namespace_id   = aws_service_discovery_private_dns_namespace.main.id
    routing_policy = "MULTIVALUE"

    dns_records {
      type = "A"
      ttl  = 10
    }
  }
}

resource "aws_ecs_task_definition" "flow" {
  count                    = var.process_count
  family                   = "${local.name}-flow-${count.index}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  volume {
    name = "recovery"

    efs_volume_configuration {
      file_system_id     = aws_efs_file_system.recovery.id
      transit_encryption = "ENABLED"

      authorization_config {
        access_point_id = aws_efs_access_point.recovery[count.index].id
        iam             = "ENABLED"
      }
    }
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([{
    name                   = "scoring"
    image                  = var.image
    essential              = true
    readonlyRootFilesystem = true
    user                   = "10001:10001"
    command                = ["python", "-m", "bytewax.run", "dataflows.scoring:flow"]
    environment = concat(
      local.common_environment,
      [{ name = "BYTEWAX_PROCESS_ID", value = tostring(count.index) }],
    )
    secrets = local.common_secrets
    portMappings = [
      { containerPort = 2101, protocol = "tcp" },
      { containerPort = 3030, protocol = "tcp" },
      { containerPort = 8080, protocol = "tcp" },
    ]
    mountPoints = [
      { sourceVolume = "recovery", containerPath = "/var/lib/fraudflow/recovery" },
      { sourceVolume = "tmp", containerPath = "/tmp" },
    ]
    healthCheck = {
      command     = ["CMD", "fraudflow-healthcheck"]
      interval    = 10
      timeout     = 3
      retries     = 3
      startPeriod = 60
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.flow.name
        awslogs-region        = var.region
        awslogs-stream-prefix = "flow-${count.index}"
      }
    }
  }])
}

resource "aws_ecs_service" "flow" {
  count                              = var.process_count
  name                               = "flow-${count.index}"
  cluster                            = aws_ecs_cluster.main.id
  task_definition                    = aws_ecs_task_definition.flow[count.index].arn
  desired_count                      = 1
  launch_type                        = "FARGATE"
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100
  enable_execute_command             = false

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.flow.id]
    assign_public_ip = false
  }

  service_registries {
    registry_arn = aws_service_discovery_service.flow[count.index].arn
  }
}

# The one-shot setup job (topics, migrations, model, features):
#   aws ecs run-task --cluster <cluster> --task-definition <setup family> ...
resource "aws_ecs_task_definition" "setup" {
  family                   = "${local.name}-setup"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([{
    name                   = "setup"
    image                  = var.image
    essential              = true
    readonlyRootFilesystem = true
    user                   = "10001:10001"
    command                = ["python", "-m", "dataflows.setup"]
    environment            = [for variable in local.common_environment : variable if startswith(variable.name, "KAFKA") || startswith(variable.name, "DATABASE")]
    secrets                = local.common_secrets
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp" }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.flow.name
        awslogs-region        = var.region
        awslogs-stream-prefix = "setup"
      }
    }
  }])
}
