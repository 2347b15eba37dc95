# Secret containers only: no secret value is written by Terraform except the
# Redis URL (see data.tf). Set the HMAC key once, out of band:
#   aws secretsmanager put-secret-value --secret-id fraudflow/hmac-key \
#     --secret-string "$(python -c 'import secrets; print(secrets.token_urlsafe(48))')"

resource "aws_secretsmanager_secret" "hmac_key" {
  #checkov:skip=CKV2_AWS_57:Rotating the HMAC key changes every token; it is rotated deliberately with a re-tokenisation plan, not on a timer.
  name                    = "fraudflow/hmac-key"
  description             = "Key of the HMAC-SHA256 tokens that replace card numbers and other personal fields"
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = 30
}

resource "aws_secretsmanager_secret" "redis_url" {
  #checkov:skip=CKV2_AWS_57:The AUTH token is changed by re-applying with a new random_password; ElastiCache has no managed rotation.
  name                    = "fraudflow/redis-url"
  description             = "rediss:// URL with the AUTH token of the feature store"
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "redis_url" {
  secret_id     = aws_secretsmanager_secret.redis_url.id
  secret_string = "rediss://:${random_password.redis.result}@${aws_elasticache_replication_group.main.primary_endpoint_address}:6379/0"
}
