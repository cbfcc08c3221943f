"""The config: `schema` (every key, the single source of its documentation), `load` (`load_config`,
`Config`), `reload` (what a SIGHUP brings, or why the running config stays), `sample` (the commented YAML
rendered from the schema), `token` (`resolve_token`) and `effective` (what `check-config` prints). Every
problem is a `ConfigError`.
"""
