//! Custom resource types of the `cimi.dev` API group.
