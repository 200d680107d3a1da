//! CimiSystem on cimi-sim: its lifecycle, on each provider dialect, its members exposed as objects, a system made
//! outside Kubernetes imported, and provider events mirrored onto it.

mod events;
mod exposed;
mod import;
mod lifecycle;
mod profiles;
