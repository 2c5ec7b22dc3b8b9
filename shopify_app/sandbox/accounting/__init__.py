"""The accounting systems' stand-ins, one module per system as in shopify_app/accounting:
`payday`, `economic`, `dinero`, `billy` — real HTTP servers on the shared `server` base (fault
modes: lost answers, 5xx, 429), each modelling what its docs/*_MODEL.md lists with the evidence;
`danish` sets a Danish company up in any of the three for the player and the sandbox."""
