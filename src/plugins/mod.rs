//! Plugins: manifests (validated model of `plugin-manifests/<name>.toml`).
//! Loading, schema, installation and CRUD build on this model.

pub mod manifest;
