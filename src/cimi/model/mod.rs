//! The CIMI 1.x resource model, shared by the client and the simulator.
