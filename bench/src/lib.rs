//! The benchmark harness of latchkey (`bench/run` drives it): a load generator, baseline
//! servers and loops, and a filler for the scale test. Nothing here is part of latchkey.

pub mod http;
pub mod stats;
