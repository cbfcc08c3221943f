"""The config: `schema` (every key, the single source of its documentation), `load` (`load_config`,
`Config`, `ConfigError`), `sample` (the commented YAML rendered from the schema) and `token`
(`resolve_token`).
"""
