mod faults;
mod flow_control;
pub(in crate::mux) mod harness;
mod lifecycle;
mod simulation;
mod timers;
mod transcripts;
