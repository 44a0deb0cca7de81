//! `lanes::Config`: refused when out of range or late, in force once
//! installed. A binary of its own: the configuration is per process.

use lanes::{Config, ConfigError};

#[tokio::test]
async fn a_configuration_is_checked_installed_once_and_in_force() {
    assert_eq!(
        Config::new().cpu_threads(0).install(),
        Err(ConfigError::Invalid("`cpu_threads` must be at least 1"))
    );
    assert_eq!(
        Config::new().cpu_nice(20).install(),
        Err(ConfigError::Invalid("`cpu_nice` must be between 0 and 19"))
    );
    assert_eq!(
        Config::new().blocking_limit(0).install(),
        Err(ConfigError::Invalid("`blocking_limit` must be at least 1"))
    );

    Config::new().cpu_threads(3).install().unwrap();
    assert_eq!(Config::new().install(), Err(ConfigError::AlreadyStarted));

    // Three calls that can only finish together: the pool has three threads.
    lanes_tests::cpu_lane_runs_together(3).await;
}

#[test]
fn the_refusal_says_what_to_do() {
    assert_eq!(
        ConfigError::AlreadyStarted.to_string(),
        "the lanes have already started; call `lanes::Config::install` before any lane fn runs"
    );
}
