//! Passing a file descriptor over a Unix socket (`SCM_RIGHTS`).

use crate::error::{Error, Result};
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The one byte of ordinary data that carries each descriptor (a stream
/// socket cannot carry ancillary data alone).
const TAG: u8 = b'R';

/// Sends `fd` over the connected Unix socket `sock`.
pub(crate) fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Result<()> {
    let fds = [fd];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(Error::io(
            "sendmsg",
            std::io::Error::other("control buffer too small"),
        ));
    }
    let data = [TAG];
    loop {
        match sendmsg(
            sock,
            &[IoSlice::new(&data)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(Error::io("sendmsg", std::io::ErrorKind::WriteZero.into())),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::io("sendmsg", e.into())),
        }
    }
}

/// Receives one descriptor sent by [`send_fd`] on `sock`.
///
/// Anything else on the socket (no descriptor, several, a closed peer) is
/// an error; descriptors that arrive beyond the first are closed.
pub(crate) fn recv_fd(sock: impl AsFd) -> Result<OwnedFd> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut data = [0u8; 1];
    let msg = loop {
        match recvmsg(
            sock.as_fd(),
            &mut [IoSliceMut::new(&mut data)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(m) => break m,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::io("recvmsg", e.into())),
        }
    };
    let mut received: Option<OwnedFd> = None;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = m {
            for fd in fds {
                if received.is_none() {
                    received = Some(fd);
                }
            }
        }
    }
    if msg.bytes == 0 {
        return Err(Error::io(
            "recvmsg",
            std::io::ErrorKind::UnexpectedEof.into(),
        ));
    }
    if msg.flags.contains(rustix::net::ReturnFlags::CTRUNC) || data[0] != TAG {
        return Err(Error::io(
            "recvmsg",
            std::io::Error::other("malformed descriptor message"),
        ));
    }
    received.ok_or_else(|| Error::io("recvmsg", std::io::Error::other("no descriptor received")))
}
