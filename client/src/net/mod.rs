//! The network task: owns the socket, reports every state change and error
//! as an event, polls TCP_INFO on a tick.
