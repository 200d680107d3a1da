//! cimi-sim: a CIMI provider that simulates an IaaS.
