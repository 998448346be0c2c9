//! controlplane's pure core: environment model, validation, rendering and planning.
//!
//! Nothing here does I/O: callers hand in file contents and get back validated models,
//! rendered files and plans. That keeps it deterministic and fast to test.

pub mod appenv;
pub mod catalog;
pub mod diag;
pub mod envplan;
pub mod load;
pub mod model;
pub mod names;
pub mod plan;
pub mod policy;
pub mod raw;
pub mod render;
pub mod resolved;
pub mod roles;
pub mod schema;
pub mod seedspec;
pub mod serverconf;
pub mod settings;
pub mod topology;
pub mod tree;
pub mod units;
mod validate;

pub use diag::{Diagnostic, Diagnostics};
pub use load::{EnvFile, EnvFiles, Loaded, load, load_base, load_each};
pub use model::Environment;
