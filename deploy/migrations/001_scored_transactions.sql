-- Every scored transaction, masked: no raw card number, email, IP or device id
-- is ever stored. Written idempotently on txn_id by the scoring flow's sink.
CREATE TABLE scored_transactions (
    txn_id             text PRIMARY KEY,
    account_id         text NOT NULL,
    pan_masked         text NOT NULL,
    pan_token          text NOT NULL,
    email_masked       text NOT NULL,
    email_token        text NOT NULL,
    ip_masked          text NOT NULL,
    ip_token           text NOT NULL,
    device_token       text NOT NULL,
    amount_minor       bigint NOT NULL CHECK (amount_minor > 0),
    currency           char(3) NOT NULL,
    merchant_id        text NOT NULL,
    mcc                char(4) NOT NULL,
    merchant_country   char(2) NOT NULL,
    channel            text NOT NULL,
    event_time         timestamptz NOT NULL,
    score              double precision NOT NULL,
    decision           text NOT NULL CHECK (decision IN ('allow', 'review', 'block')),
    reasons            text[] NOT NULL DEFAULT '{}',
    model_version      text NOT NULL,
    features           jsonb NOT NULL DEFAULT '{}',
    degraded           boolean NOT NULL DEFAULT false,
    kafka_timestamp_ms bigint NOT NULL,
    scored_at          timestamptz NOT NULL,
    latency_ms         double precision,
    written_at         timestamptz NOT NULL DEFAULT now()
);

-- An account's history in time order: investigations and offline features.
CREATE INDEX scored_transactions_account_time
    ON scored_transactions (account_id, event_time);

-- Flagged rows only (a few percent of all): the review queue.
CREATE INDEX scored_transactions_flagged
    ON scored_transactions (decision, event_time)
    WHERE decision <> 'allow';

-- No index on the tokens: a random 64-character key in a btree roughly halves
-- the insert rate. Card joins are analysts' queries; index a replica for them.
