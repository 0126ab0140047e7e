//! The unit of work that moves between stages.
//!
//! A [`Frame`] is where it belongs (session, site, seq, when it entered) and a payload
//! whose types belong to the [`Domain`] that uses the runtime (the voice's are in
//! `alicia-speech`): the runtime moves frames and never looks inside one. Ids are
//! `Arc<str>`, so cloning a frame for fan-out is cheap when its payload is.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// Declares a cheap-clone string id; sessions and sites are copied into every frame,
/// so they are shared rather than reallocated.
macro_rules! shared_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(Arc::from(value))
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(Arc::from(value))
            }
        }
    };
}

shared_id!(
    /// One voice interaction (wake → reply), or one message exchange.
    SessionId
);
shared_id!(
    /// The room or device a session comes from (`alicia/voice/audio/{SITE}/...`).
    SiteId
);

/// What frames carry in one use of the runtime: a marker type naming the payload and
/// what the domain adds to every frame's meta (kept by [`Frame::derive`]).
pub trait Domain: Clone + fmt::Debug + Send + Sync + 'static {
    type Payload: Clone + fmt::Debug + Send + Sync + 'static;
    /// Empty (`()`) for a domain that adds nothing.
    type Meta: Clone + fmt::Debug + Default + Send + Sync + 'static;
}

/// Where a frame belongs and when it entered the engine.
#[derive(Clone, Debug)]
pub struct FrameMeta<M> {
    pub session_id: SessionId,
    pub site_id: SiteId,
    /// Position within the session; stages keep it so the speaker can spot gaps.
    pub seq: u64,
    /// When the first byte of this frame reached the engine; end-to-end latency is
    /// measured from here.
    pub ingress: Instant,
    /// What the domain keeps with every frame of a session (the voice: its timeline).
    pub domain: M,
}

impl<M: Default> FrameMeta<M> {
    /// Meta for a frame that enters the engine now.
    pub fn new(session_id: impl Into<SessionId>, site_id: impl Into<SiteId>, seq: u64) -> Self {
        Self {
            session_id: session_id.into(),
            site_id: site_id.into(),
            seq,
            ingress: Instant::now(),
            domain: M::default(),
        }
    }
}

/// The unit that moves over edges.
#[derive(Clone, Debug)]
pub struct Frame<D: Domain> {
    pub meta: FrameMeta<D::Meta>,
    pub payload: D::Payload,
}

impl<D: Domain> Frame<D> {
    pub fn new(meta: FrameMeta<D::Meta>, payload: D::Payload) -> Self {
        Self { meta, payload }
    }

    /// A new frame of the same session, site, seq, ingress and domain meta: what a
    /// stage emits when it turns one payload into another, so latency stays measurable.
    pub fn derive(&self, payload: D::Payload) -> Frame<D> {
        Frame { meta: self.meta.clone(), payload }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug)]
    struct Counted;

    impl Domain for Counted {
        type Payload = u32;
        type Meta = Vec<&'static str>;
    }

    #[test]
    fn ids_compare_by_value() {
        assert_eq!(SessionId::from("a"), SessionId::from(String::from("a")));
        assert_eq!(SiteId::from("kitchen").to_string(), "kitchen");
    }

    #[test]
    fn a_derived_frame_keeps_where_it_belongs_and_its_domain_meta() {
        let mut meta: FrameMeta<Vec<&'static str>> = FrameMeta::new("s1", "kitchen", 7);
        meta.domain.push("heard");
        let frame: Frame<Counted> = Frame::new(meta, 1);
        let next = frame.derive(2);
        assert_eq!((next.meta.seq, next.meta.site_id.as_str(), next.payload), (7, "kitchen", 2));
        assert_eq!(next.meta.domain, ["heard"]);
        assert_eq!(next.meta.ingress, frame.meta.ingress);
    }
}
