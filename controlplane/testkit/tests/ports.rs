//! The port allocator never hands out a port the shipped environments publish at a
//! fixed number inside its band (an extra's well-known port): a test giving that port
//! to a service would fail validation at random.

use cp_runtime::project::Project;

#[test]
fn every_fixed_port_the_shipped_environments_publish_in_the_band_is_avoided() {
    let (lo, hi) = cp_testkit::band();
    let project = Project::new(cp_testkit::environments_dir());
    let mut seen = 0;
    for env in ["dev", "staging", "production"] {
        let env = project
            .load(env, &[])
            .unwrap_or_else(|e| panic!("{env} does not load: {e:?}"))
            .env;
        for (name, extra) in &env.extras {
            for (port_name, port) in &extra.ports {
                seen += 1;
                if (lo..hi).contains(port) {
                    assert!(
                        cp_testkit::ports::SHIPPED_IN_BAND.contains(port),
                        "extras.{name}.ports.{port_name} = {port} lies in the tests' port band {lo}-{hi}: add it to SHIPPED_IN_BAND in controlplane/testkit/src/ports.rs"
                    );
                }
            }
        }
    }
    assert!(seen > 0, "the shipped environments publish no extra's port");
}
