"""The Shopify stand-in: a real HTTP server built from Shopify's documentation and the 2026-10
Admin GraphQL schema (docs/SHOPIFY_MODEL.md). `standin` serves it (OAuth and token exchange,
GraphQL with cost and throttling, webhooks); `store` holds shops and orders and applies what a
merchant does; `graphql_api` executes queries against the schema, `nodes` resolves them, `bulk`
runs bulk operations; `payloads` are webhook bodies, `money` Shopify's arithmetic, `oauth` its
token authority, `app_toml` the app's declared scopes and subscriptions."""
