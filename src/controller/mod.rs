//! The reconcilers and their shared machinery.
