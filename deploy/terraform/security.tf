# Security groups allow only the flows the pipeline needs: the flow reaches
# Kafka, PostgreSQL, Redis and EFS; its processes reach each other on the
# Bytewax cluster port; Prometheus reaches the metrics port.

resource "aws_security_group" "flow" {
  name        = "${local.name}-flow"
  description = "Bytewax scoring processes"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "database" {
  name        = "${local.name}-database"
  description = "PostgreSQL, reachable from the flow only"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "redis" {
  name        = "${local.name}-redis"
  description = "Redis feature store, reachable from the flow only"
  vpc_id      = aws_vpc.main.id
}

resource "aws_security_group" "efs" {
  name        = "${local.name}-efs"
  description = "Recovery partitions over NFS, reachable from the flow only"
  vpc_id      = aws_vpc.main.id
}

resource "aws_vpc_security_group_ingress_rule" "flow_cluster" {
  security_group_id            = aws_security_group.flow.id
  description                  = "Bytewax cluster traffic between processes"
  referenced_security_group_id = aws_security_group.flow.id
  ip_protocol                  = "tcp"
  from_port                    = 2101
  to_port                      = 2101
}

resource "aws_vpc_security_group_ingress_rule" "flow_metrics" {
  for_each          = toset(var.metrics_cidr_blocks)
  security_group_id = aws_security_group.flow.id
  description       = "Prometheus scrapes"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 3030
  to_port           = 3030
}

resource "aws_vpc_security_group_egress_rule" "flow_cluster" {
  security_group_id            = aws_security_group.flow.id
  description                  = "Bytewax cluster traffic between processes"
  referenced_security_group_id = aws_security_group.flow.id
  ip_protocol                  = "tcp"
  from_port                    = 2101
  to_port                      = 2101
}

resource "aws_vpc_security_group_egress_rule" "flow_kafka" {
  for_each          = toset(var.kafka_cidr_blocks)
  security_group_id = aws_security_group.flow.id
  description       = "Kafka brokers"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = var.kafka_port
  to_port           = var.kafka_port
}

resource "aws_vpc_security_group_egress_rule" "flow_database" {
  security_group_id            = aws_security_group.flow.id
  description                  = "PostgreSQL"
  referenced_security_group_id = aws_security_group.database.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_vpc_security_group_egress_rule" "flow_redis" {
  security_group_id            = aws_security_group.flow.id
  description                  = "Redis"
  referenced_security_group_id = aws_security_group.redis.id
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
}

resource "aws_vpc_security_group_egress_rule" "flow_efs" {
  security_group_id            = aws_security_group.flow.id
  description                  = "EFS (NFS) for recovery partitions"
  referenced_security_group_id = aws_security_group.efs.id
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
}

resource "aws_vpc_security_group_egress_rule" "flow_https" {
  security_group_id = aws_security_group.flow.id
  description       = "HTTPS to ECR, Secrets Manager and CloudWatch through the NAT gateway"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_ingress_rule" "database_from_flow" {
  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from the flow"
  referenced_security_group_id = aws_security_group.flow.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_vpc_security_group_ingress_rule" "redis_from_flow" {
  security_group_id            = aws_security_group.redis.id
  description                  = "Redis from the flow"
  referenced_security_group_id = aws_security_group.flow.id
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
}

resource "aws_vpc_security_group_ingress_rule" "efs_from_flow" {
  security_group_id            = aws_security_group.efs.id
  description                  = "NFS from the flow"
  referenced_security_group_id = aws_security_group.flow.id
  ip_protocol                  = "tcp"
  from_port                    = 2049
  to_port                      = 2049
}
