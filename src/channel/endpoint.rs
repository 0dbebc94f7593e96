//! The constructors every typed channel end shares (SPSC [`Sender`] and
//! [`Receiver`], MPMC [`MpmcSender`] and [`MpmcReceiver`]), written once.
//!
//! [`Sender`]: super::Sender
//! [`Receiver`]: super::Receiver
//! [`MpmcSender`]: super::MpmcSender
//! [`MpmcReceiver`]: super::MpmcReceiver

/// Implements `create`, `open`, `open_or_create`, `from_region`, `from_env`, `region` and
/// `Debug` for the channel end `$ty<T>`.
///
/// The invoking module supplies, by name:
/// - `$layout::<T>() -> LayoutId`: the channel kind's layout id for `T`;
/// - `$options::<T>(Option<usize>) -> Result<RegionOptions>`: the region
///   options with that layout, sized for the ring when given a capacity;
/// - `$init::<T>(&Region, usize) -> Result<()>`: lays out a fresh region
///   (channel header and ring).
///
/// The end itself must have `fn attach(Region) -> Result<Self>`, a
/// `region` field that is (or derefs to) the [`Region`](crate::Region),
/// and a `shared` field with `fn capacity(&self) -> usize` for every
/// `T: Pod`.
macro_rules! endpoint_constructors {
    ($ty:ident, layout: $layout:ident, options: $options:ident, init: $init:ident) => {
        impl<T: ::bytemuck::Pod + Send> $ty<T> {
            /// Creates a named channel of `capacity` slots (a power of two)
            /// and attaches this end.
            pub fn create(name: &str, capacity: usize) -> $crate::error::Result<Self> {
                let region = $options::<T>(Some(capacity))?
                    .create_with(name, |r| $init::<T>(r, capacity))?;
                Self::attach(region)
            }

            /// Creates an anonymous channel of `capacity` slots (a power of
            /// two) and attaches this end only: the other end is for
            /// another process, which inherits the region
            /// ([`region`](Self::region), passed with
            /// [`Region::pass_to_child`](crate::Region::pass_to_child) or
            /// [`process::Builder::pass_region`](crate::process::Builder::pass_region))
            /// and attaches with `from_env`. Until it does, this end sees
            /// the other as not yet attached (it waits, as for a named
            /// channel whose peer has not opened it yet), never as gone:
            /// no hand-over handshake is needed.
            pub fn anonymous(capacity: usize) -> $crate::error::Result<Self> {
                let region =
                    $options::<T>(Some(capacity))?.anonymous_with(|r| $init::<T>(r, capacity))?;
                Self::attach(region)
            }

            /// Opens the named channel and attaches this end; waits for a
            /// creator that is still initializing it (up to the region
            /// default timeout).
            pub fn open(name: &str) -> $crate::error::Result<Self> {
                Self::attach($options::<T>(None)?.open(name)?)
            }

            /// Opens the named channel, or creates it as
            /// [`create`](Self::create) does if there is none, and attaches
            /// this end: what a program that may be restarted calls. An
            /// existing channel must have `capacity` slots
            /// ([`Error::InvalidSize`](crate::Error::InvalidSize)
            /// otherwise). A half-made channel whose creator died is
            /// replaced; one whose processes all died is reused, this end
            /// taking over a dead handle's place.
            pub fn open_or_create(name: &str, capacity: usize) -> $crate::error::Result<Self> {
                let region = $options::<T>(Some(capacity))?
                    .open_or_create_with(name, |r| $init::<T>(r, capacity))?;
                Self::attach(region)
            }

            /// Attaches this end to a channel region opened by other means
            /// (a descriptor received over a socket, say).
            pub fn from_region(region: $crate::region::Region) -> $crate::error::Result<Self> {
                if region.layout() != $layout::<T>() {
                    return Err($crate::error::Error::LayoutMismatch {
                        found: region.layout().to_raw(),
                        expected: $layout::<T>().to_raw(),
                    });
                }
                Self::attach(region)
            }

            /// Opens the channel region a parent passed with
            /// [`Region::pass_to_child`](crate::Region::pass_to_child) under
            /// the environment variable `var`, and attaches this end.
            ///
            /// # Safety
            ///
            /// As for
            /// [`RegionOptions::from_env`](crate::RegionOptions::from_env):
            /// the descriptor must have been inherited for this purpose and
            /// be owned by nothing else in this process.
            pub unsafe fn from_env(var: &str) -> $crate::error::Result<Self> {
                // SAFETY: forwarded to the caller.
                let region = unsafe { $options::<T>(None)?.from_env(var)? };
                Self::from_region(region)
            }

            /// The channel's region (to pass it to a child process).
            pub fn region(&self) -> &$crate::region::Region {
                &self.region
            }

            /// How many values the channel holds at most: its ring's slots
            /// (as validated when this end attached).
            pub fn capacity(&self) -> usize {
                self.shared.capacity()
            }
        }

        impl<T: ::bytemuck::Pod> ::core::fmt::Debug for $ty<T> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("name", &self.region.name())
                    .field("capacity", &self.shared.capacity())
                    .finish_non_exhaustive()
            }
        }
    };
}

pub(crate) use endpoint_constructors;
