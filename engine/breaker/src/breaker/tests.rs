use super::*;
use crate::clock::ManualClock;

#[derive(Debug, PartialEq, Eq)]
enum Failure {
    Refused,
    Broken,
    BadRequest,
}

fn judge(failure: &Failure) -> Verdict {
    match failure {
        Failure::Refused => Verdict::Retry,
        Failure::Broken => Verdict::Fail,
        Failure::BadRequest => Verdict::NotTheTarget,
    }
}

fn breaker(settings: BreakerSettings) -> (Breaker, ManualClock) {
    let clock = ManualClock::default();
    (Breaker::with_clock("test", settings, Arc::new(clock.clone())), clock)
}

fn settings() -> BreakerSettings {
    BreakerSettings {
        failure_threshold: 3,
        open_ms: 1_000,
        max_attempts: 3,
        initial_backoff_ms: 10,
        max_backoff_ms: 100,
        jitter_percent: 0,
    }
}

#[test]
fn retries_a_retryable_failure_with_growing_waits() {
    let (breaker, clock) = breaker(BreakerSettings { failure_threshold: 10, ..settings() });
    let mut calls = 0;
    let result = breaker.call(clock.now() + Duration::from_secs(5), judge, |_| {
        calls += 1;
        if calls < 3 {
            Err(Failure::Refused)
        } else {
            Ok("answer")
        }
    });
    assert_eq!(result, Ok("answer"));
    assert_eq!(clock.slept(), [Duration::from_millis(10), Duration::from_millis(20)]);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[test]
fn gives_up_after_max_attempts_and_does_not_retry_what_a_retry_cannot_mend() {
    let (breaker, clock) = breaker(BreakerSettings { failure_threshold: 10, ..settings() });
    let deadline = clock.now() + Duration::from_secs(5);
    let mut calls = 0;
    let result: Result<(), _> = breaker.call(deadline, judge, |_| {
        calls += 1;
        Err(Failure::Refused)
    });
    assert_eq!((result, calls), (Err(CallError::Failed(Failure::Refused)), 3));

    for (failure, state) in [(Failure::Broken, BreakerState::Closed), (Failure::BadRequest, BreakerState::Closed)] {
        let mut calls = 0;
        let result: Result<(), _> = breaker.call(deadline, judge, |_| {
            calls += 1;
            Err(match failure {
                Failure::Broken => Failure::Broken,
                _ => Failure::BadRequest,
            })
        });
        assert_eq!((result, calls, breaker.state()), (Err(CallError::Failed(failure)), 1, state));
    }
}

#[test]
fn never_sleeps_past_the_deadline() {
    let (breaker, clock) = breaker(BreakerSettings { failure_threshold: 10, ..settings() });
    let deadline = clock.now() + Duration::from_millis(15);
    let mut calls = 0;
    let result: Result<(), _> = breaker.call(deadline, judge, |_| {
        calls += 1;
        Err(Failure::Refused)
    });
    assert_eq!(result, Err(CallError::Failed(Failure::Refused)));
    assert_eq!(calls, 2, "a wait of 10 ms fits, the next of 20 ms does not");
    assert!(clock.now() < deadline);
}

#[test]
fn opens_short_circuits_probes_and_closes() {
    let (breaker, clock) = breaker(BreakerSettings { max_attempts: 1, ..settings() });
    let deadline = || clock.now() + Duration::from_secs(5);
    for _ in 0..3 {
        let _ = breaker.call(deadline(), judge, |_| Err::<(), _>(Failure::Refused));
    }
    assert_eq!(breaker.state(), BreakerState::Open);

    let mut reached = false;
    let result: Result<(), _> = breaker.call(deadline(), judge, |_| {
        reached = true;
        Ok(())
    });
    assert!(!reached, "an open breaker answers without calling");
    assert_eq!(result, Err(CallError::Open { target: "test".into(), retry_in: Duration::from_secs(1) }));

    // The probe fails: open again for another cool-down.
    clock.advance(Duration::from_secs(1));
    let _ = breaker.call(deadline(), judge, |_| Err::<(), _>(Failure::Refused));
    assert_eq!(breaker.state(), BreakerState::Open);

    clock.advance(Duration::from_secs(1));
    assert_eq!(breaker.call(deadline(), judge, |_| Ok::<_, Failure>(7)), Ok(7));
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[test]
fn retries_stop_once_the_breaker_opens() {
    let (breaker, clock) = breaker(BreakerSettings { failure_threshold: 2, max_attempts: 5, ..settings() });
    let mut calls = 0;
    let result: Result<(), _> = breaker.call(clock.now() + Duration::from_secs(5), judge, |_| {
        calls += 1;
        Err(Failure::Refused)
    });
    assert_eq!((result, calls), (Err(CallError::Failed(Failure::Refused)), 2));
    assert_eq!(breaker.state(), BreakerState::Open);
}
