//! Rules sync (seed 002): PrometheusRule resources and plain rule files
//! from a directory, each assigned to a tenant by its `tenant` label, are
//! reconciled into that tenant's ruler (Mimir's ruler configuration API on
//! its prometheus upstream, or Loki's on its loki upstream for files marked
//! `ruler: loki`) with the proxy's own credentials, inside the ruler
//! namespaces that carry `namespace_prefix` and nowhere else.
//!
//! `load` (at config load: files -> `group::Group`s per ruler, problems by
//! file and field) -> `syncer::Syncer` (one background task) -> per ruler:
//! `ruler::Ruler::list` -> `plan::plan` -> `Ruler::post` / `Ruler::delete`.

pub mod group;
pub mod kind;
pub mod load;
pub mod plan;
pub mod raw;
pub mod ruler;
pub mod syncer;
pub mod wanted;

pub use kind::RulerKind;
pub use load::{RulerTarget, RulesSync};
pub use raw::RawRulesSync;
pub use syncer::Syncer;
