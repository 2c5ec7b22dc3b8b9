"""Payday (payday.is), the Icelandic shops' system, behind the neutral credit note.

Payday has no credit-note entity and no idempotency key, and numbers invoices in the background,
so more of its work is ours than a Danish system's: `api` is the HTTP client; `adapter` makes the
credit invoice from a Note (the customer found by kennitala or e-mail and remembered in
`customers`, the sale invoice looked up in `originals` (C7), a paid credit Payday refuses made
unpaid and paid once issued); `numbers` fetches the numbers Payday gives later; `stock` puts
returned goods back where Payday keeps stock."""
