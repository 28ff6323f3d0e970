//! Authentication and authorization primitives, free of storage and HTTP:
//! password hashing, JWT access tokens, refresh-token material, the login
//! rate limiter, and the [`Principal`] a request acts as.

pub mod password;
pub mod principal;
pub mod ratelimit;
pub mod rbac;
pub mod token;

pub use principal::Principal;
