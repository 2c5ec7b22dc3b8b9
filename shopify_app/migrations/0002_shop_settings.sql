-- What the invoicing pipeline needs to know about each shop; secrets encrypted (Fernet).
CREATE TABLE shop_settings (
    shop_id                   bigint PRIMARY KEY REFERENCES shops (id) ON DELETE CASCADE,
    payday_client_id          text,
    payday_client_secret_enc  bytea,
    payday_environment        text NOT NULL DEFAULT 'production' CHECK (payday_environment IN ('production', 'test')),
    payment_types             jsonb NOT NULL DEFAULT '{}',   -- Shopify gateway name -> Payday payment type id
    send_email                boolean NOT NULL DEFAULT false,
    kennitala_from_company    boolean NOT NULL DEFAULT true,
    auto_process              boolean NOT NULL DEFAULT false,
    updated_at                timestamptz NOT NULL DEFAULT now()
);

-- Payday's 24 h access token per shop, so forked job processes do not log in for every job.
CREATE TABLE payday_tokens (
    shop_id           bigint PRIMARY KEY REFERENCES shops (id) ON DELETE CASCADE,
    credentials_hash  text NOT NULL,      -- sha256 of base URL + client id: new credentials, new token
    access_token_enc  bytea NOT NULL,
    expires_at        timestamptz NOT NULL
);
