mod faults;
mod flow_control;
mod harness;
mod lifecycle;
mod simulation;
mod timers;
mod transcripts;
