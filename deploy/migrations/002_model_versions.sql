-- Models that have scored transactions, with their model card (features,
-- thresholds, training data window, evaluation) as written by training.
CREATE TABLE model_versions (
    version    text PRIMARY KEY,
    card       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
