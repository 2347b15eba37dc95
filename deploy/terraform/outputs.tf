output "ecs_cluster_name" {
  description = "ECS cluster running the flow services."
  value       = aws_ecs_cluster.main.name
}

output "flow_service_names" {
  description = "One ECS service per Bytewax process, in process-id order."
  value       = aws_ecs_service.flow[*].name
}

output "bytewax_addresses" {
  description = "The cluster address list every process receives."
  value       = local.addresses
}

output "setup_task_definition" {
  description = "Task definition of the one-shot setup job (run with aws ecs run-task)."
  value       = aws_ecs_task_definition.setup.arn
}

output "database_endpoint" {
  description = "PostgreSQL host name."
  value       = aws_db_instance.main.address
}

output "database_password_secret_arn" {
  description = "Secrets Manager secret (managed by RDS) holding the database password."
  value       = aws_db_instance.main.master_user_secret[0].secret_arn
}

output "hmac_key_secret_arn" {
  description = "Secrets Manager secret to fill with the HMAC key before the first start."
  value       = aws_secretsmanager_secret.hmac_key.arn
}

output "redis_endpoint" {
  description = "Primary endpoint of the Redis feature store."
  value       = aws_elasticache_replication_group.main.primary_endpoint_address
}

output "private_subnet_ids" {
  description = "Private subnets, for running the setup task."
  value       = aws_subnet.private[*].id
}

output "flow_security_group_id" {
  description = "Security group of the flow tasks, for running the setup task."
  value       = aws_security_group.flow.id
}
