//! controlplane's kube driver.
