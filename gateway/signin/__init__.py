"""Sign-in through an OpenID Connect provider: the gateway as a confidential client (BFF).

docs/security.md §Sign-in says why the gateway, not the browser, is the client; contract §15
says what the routes do. `discovery` finds the provider and its keys, `client` speaks the
authorization code flow with PKCE, `store` keeps logins in progress and sessions, `cookies`
turns a session cookie into the bearer token the rest of the gateway already verifies, and
`routes` are the /auth/* endpoints.
"""
