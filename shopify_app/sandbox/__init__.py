"""Local stand-ins for Shopify and Payday: real HTTP servers for the tests and the sandbox."""
