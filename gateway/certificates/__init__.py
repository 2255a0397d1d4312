"""Keys and certificates: load the transport certificate and signing keys named in config, publish the public
signing keys as a JWKS, report expiry dates, and (local environment only) generate throw-away material."""
