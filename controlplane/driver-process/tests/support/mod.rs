//! The process driver's tests use the shared harness (`cp-testkit`).

#![allow(unused_imports)]

pub(crate) use cp_testkit::*;
