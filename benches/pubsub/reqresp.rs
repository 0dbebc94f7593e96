//! C. Request/response round trips through `shmkit::reqresp`: the parent
//! is the client, the child the server. A round trip is one 64-byte
//! request, loaned and stamped in place, answered by a stream of 64-byte
//! responses, each loaned and stamped in place, and the end of the
//! stream.
//!
//! What is written and checked is what the pubsub loan rows write and
//! check ([`stamp`], [`check_msg`]): the request's sequence number in the
//! first and last 8 bytes of the request and of every response, read in
//! place by the other side.

use crate::loan::Receive;
use crate::support::{
    self, check_msg, drive, ping_pong, read_stamp, serve_echo, spawn_with_control, stamp, Control,
    Echoer, Pinger, Pings, Wait, CHILD_IDLE_LIMIT, LINK_A_VAR, PARENT_WAIT_LIMIT, STOP,
};
use crate::Ctx;
use shmkit::pool::PoolConfig;
use shmkit::reqresp::{
    ActiveRequest, Client, PendingResponse, Response, Server, ServiceConfig, TryRecvError,
    TryResponseError,
};
use shmkit::{RegionOptions, Shm};
use std::time::{Duration, Instant};

/// Bytes of a request and of each response.
pub(crate) const REQUEST_SIZE: usize = 64;
/// The rows: responses per request, and how both sides wait.
pub(crate) const REQUEST_ROWS: [(usize, Receive); 3] = [
    (1, Receive::Blocking),
    (4, Receive::Blocking),
    (1, Receive::Poll),
];
/// Clients of the service: the parent.
const REQUEST_CLIENTS: usize = 1;
/// Envelopes in each of the client's two queues: room for the longest
/// stream of [`REQUEST_ROWS`] and its end, so that the server never waits
/// for the client to make room.
pub(crate) const REQUEST_QUEUE: usize = 8;
/// Messages a side holds at once: the server its one request, the client
/// one response, dropped before the next is received.
const REQUEST_HELD: usize = 1;
/// Blocks of the pool's one class: the bound `clients * (2 * queue +
/// held) + held`, so that no loan finds the pool empty.
pub(crate) const REQUEST_BLOCKS: usize =
    REQUEST_CLIENTS * (2 * REQUEST_QUEUE + REQUEST_HELD) + REQUEST_HELD;

/// The service of every row.
fn request_config() -> ServiceConfig {
    ServiceConfig::new(PoolConfig::new().class(REQUEST_SIZE, REQUEST_BLOCKS))
        .clients(REQUEST_CLIENTS)
        .queue_capacity(REQUEST_QUEUE)
        .held_limit(REQUEST_HELD)
}

/// Names the row's way of waiting in the server child's role.
pub(crate) fn request_tag(how: Receive) -> &'static str {
    match how {
        Receive::Blocking => "reqresp",
        Receive::Poll => "reqresp-poll",
    }
}

/// The way of waiting a server child's role names.
pub(crate) fn request_how(tag: &str) -> Option<Receive> {
    [Receive::Blocking, Receive::Poll]
        .into_iter()
        .find(|&how| request_tag(how) == tag)
}

/// Polls `attempt` (`None`: nothing yet) for about `limit`.
#[inline]
fn poll<T>(
    limit: Duration,
    attempt: impl FnMut() -> Option<Result<T, String>>,
) -> Result<T, String> {
    support::wait_for(limit, Wait::Spin, attempt)
        .unwrap_or_else(|| Err(format!("nothing within {limit:?}")))
}

/// The next response to `pending` or the end of its stream (`None`),
/// waiting as `how` says: blocking until `deadline`, or polling for about
/// [`PARENT_WAIT_LIMIT`].
#[inline]
fn next_response<'c>(
    pending: &PendingResponse<'c>,
    how: Receive,
    deadline: Instant,
) -> Result<Option<Response<'c>>, String> {
    match how {
        Receive::Blocking => pending.recv_deadline(deadline).map_err(|e| e.to_string()),
        Receive::Poll => poll(PARENT_WAIT_LIMIT, || match pending.try_recv() {
            Err(TryResponseError::Empty) => None,
            r => Some(r.map_err(|e| e.to_string())),
        }),
    }
}

/// The next request, waiting as `how` says: blocking as long as it takes
/// (a child whose parent dies dies with it), or polling for about
/// [`CHILD_IDLE_LIMIT`].
#[inline]
fn next_request(server: &Server, how: Receive) -> Result<ActiveRequest<'_>, String> {
    match how {
        Receive::Blocking => server.recv().map_err(|e| e.to_string()),
        Receive::Poll => poll(CHILD_IDLE_LIMIT, || match server.try_recv() {
            Err(TryRecvError::Empty) => None,
            r => Some(r.map_err(|e| e.to_string())),
        }),
    }
}

/// The client's side: loans a request, stamps it, sends it, then
/// receives and checks every response and the end of the stream.
struct RequestPinger {
    client: Client,
    responses: usize,
    how: Receive,
    /// A receive gives up past this (the child died): set far enough out
    /// for the whole round, so that no round trip reads the clock for it.
    deadline: Instant,
}

impl RequestPinger {
    /// Sends request `seq` and waits for its stream: `responses`
    /// responses (each checked, then dropped) and its end.
    #[inline]
    fn round_trip(&self, seq: u64, responses: usize) -> Result<(), String> {
        let mut request = self
            .client
            .loan(REQUEST_SIZE)
            .map_err(|e| format!("loaning request {seq}: {e}"))?;
        stamp(&mut request, seq);
        let pending = request
            .send()
            .map_err(|e| format!("sending request {seq}: {e}"))?;
        for part in 0..=responses {
            let next = next_response(&pending, self.how, self.deadline)
                .map_err(|e| format!("receiving response {part} to request {seq}: {e}"))?;
            match (next, part < responses) {
                (Some(response), true) => check_msg(&response, REQUEST_SIZE, seq)?,
                (None, false) => {}
                (Some(_), false) => {
                    return Err(format!("request {seq}: more than {responses} responses"))
                }
                (None, true) => {
                    return Err(format!(
                        "request {seq}: the stream ended after {part} of {responses} responses"
                    ))
                }
            }
        }
        Ok(())
    }
}

impl Pinger for RequestPinger {
    #[inline]
    fn ping(&mut self, seq: u64) -> Result<(), String> {
        self.round_trip(seq, self.responses)
    }

    /// The stop request, which the server ends unanswered.
    fn stop(&mut self) -> Result<(), String> {
        self.round_trip(STOP, 0)
    }
}

/// The server's side: receives a request, checks it, answers with
/// `responses` loans stamped alike, the last of them ending the stream
/// ([`ResponseMut::send_last`](shmkit::reqresp::ResponseMut::send_last)).
struct RequestEchoer {
    server: Server,
    responses: usize,
    how: Receive,
}

impl Echoer for RequestEchoer {
    #[inline]
    fn echo(&mut self) -> Result<bool, String> {
        let request = next_request(&self.server, self.how)
            .map_err(|e| format!("receiving a request: {e}"))?;
        let seq = read_stamp(&request)?;
        let responses = if seq == STOP {
            0
        } else {
            check_msg(&request, REQUEST_SIZE, seq)?;
            self.responses
        };
        for part in 0..responses {
            let sent = request.loan(REQUEST_SIZE).map_err(|e| e.to_string());
            sent.and_then(|mut response| {
                stamp(&mut response, seq);
                // The last response ends the stream itself.
                match part + 1 == responses {
                    true => response.send_last(),
                    false => response.send(),
                }
                .map_err(|e| e.to_string())
            })
            .map_err(|e| format!("response {part} to request {seq}: {e}"))?;
        }
        // A no-op after a last response; the end of a stream without one.
        request
            .finish()
            .map_err(|e| format!("ending the stream of request {seq}: {e}"))?;
        Ok(seq != STOP)
    }
}

/// Round trips of 64-byte requests, each answered by `responses` 64-byte
/// responses, to a server child.
pub(crate) fn request_latency(
    responses: usize,
    how: Receive,
    ctx: &Ctx,
    role: &str,
    control: &Shm<Control>,
) -> Pings {
    let (placement, budget) = (&ctx.placement, &ctx.plan.latency);
    // The child becomes the server once this handle is dropped (one
    // server at a time); the client stays.
    let server =
        Server::anonymous(&request_config()).map_err(|e| format!("creating the service: {e}"))?;
    let client = server
        .client()
        .map_err(|e| format!("attaching the client: {e}"))?;
    let child = spawn_with_control(role, control, placement, |cmd| {
        server.region().pass_to_child(cmd, LINK_A_VAR);
    })?;
    let round = budget.warmup + budget.budget / budget.rounds;
    let mut pinger = RequestPinger {
        client,
        responses,
        how,
        deadline: Instant::now() + round * 4 + PARENT_WAIT_LIMIT + Duration::from_secs(1),
    };
    drive(role, control, placement, child, server, || {
        ping_pong(&mut pinger, budget)
    })
}

/// The child's side: serves the service the parent passed, answering
/// every request with `responses` responses, until the stop request.
pub(crate) fn request_serve(
    responses: usize,
    how: Receive,
    control: &Control,
) -> Result<(), String> {
    // SAFETY: the parent passed this service's region with
    // `pass_to_child` under LINK_A_VAR for exactly this purpose; nothing
    // else in this process owns it, and this is the only call for the
    // variable.
    let region = unsafe { RegionOptions::new().any_layout().from_env(LINK_A_VAR) }
        .map_err(|e| format!("opening the service: {e}"))?;
    let server = Server::from_region(region).map_err(|e| format!("serving: {e}"))?;
    serve_echo(
        control,
        RequestEchoer {
            server,
            responses,
            how,
        },
    )
}
