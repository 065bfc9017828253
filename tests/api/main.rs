//! Black-box tests: the real application on a random loopback port with a fresh
//! temporary SQLite file, driven over HTTP (and the CLI binary) like a client would.

mod helpers;

mod admin;
mod audit;
mod cli;
mod enumeration;
mod errors;
mod faults;
mod fuzz;
mod housekeeping;
mod input_battery;
mod instances;
mod integration;
mod jwt_attacks;
mod keys;
mod lockout;
mod me;
mod metrics;
mod mfa;
mod nginx;
mod openapi;
mod outage;
mod pages;
mod passwords;
mod races;
mod refresh;
mod revocation;
mod sign_in;
mod verifiers;
