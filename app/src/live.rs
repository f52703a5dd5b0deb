//! The live event stream: one `EventSource` on `/api/v1/events` that feeds the store, and reconnects.
//!
//! Each SSE message (event name `change`) carries one JSON [`api::v1::Event`]. Every time the stream
//! (re)opens, the whole inventory is reloaded, because events sent while it was down are lost. The browser
//! retries a dropped stream by itself; when the server refused it outright (readyState CLOSED, e.g. the
//! session expired), we ask who we are, sign out on 401, and otherwise open a new stream a little later.

use crate::api_client::{self, EVENTS_URL};
use crate::session::Session;
use crate::store::{LiveStatus, Store};
use api::v1::Event;
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::Duration;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{EventSource, MessageEvent};

/// Pause before opening a new stream after the server refused or closed the previous one.
const RECONNECT_AFTER: Duration = Duration::from_secs(3);

/// One open `EventSource` and the callbacks it calls; dropping it closes the stream.
struct Connection {
    source: EventSource,
    _on_change: Closure<dyn FnMut(MessageEvent)>,
    _on_open: Closure<dyn FnMut(web_sys::Event)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.source.close();
    }
}

struct Inner {
    store: Store,
    session: Session,
    connection: RefCell<Option<Connection>>,
    /// Set when the console leaves the signed-in area: no reconnect may happen after that.
    stopped: Cell<bool>,
}

/// Keeps the live stream open while it lives; dropping it closes the stream for good.
pub struct LiveEvents {
    inner: Rc<Inner>,
}

impl LiveEvents {
    pub fn start(store: Store, session: Session) -> LiveEvents {
        let inner = Rc::new(Inner { store, session, connection: RefCell::new(None), stopped: Cell::new(false) });
        connect(&inner);
        LiveEvents { inner }
    }
}

impl Drop for LiveEvents {
    fn drop(&mut self) {
        self.inner.stopped.set(true);
        self.inner.connection.borrow_mut().take();
    }
}

fn connect(inner: &Rc<Inner>) {
    if inner.stopped.get() {
        return;
    }
    let store = inner.store;
    let Ok(source) = EventSource::new(EVENTS_URL) else {
        schedule_reconnect(Rc::downgrade(inner));
        return;
    };

    let on_change = Closure::<dyn FnMut(MessageEvent)>::new(move |message: MessageEvent| {
        let Some(text) = message.data().as_string() else {
            return;
        };
        match serde_json::from_str::<Event>(&text) {
            Ok(event) => store.apply(event),
            // A newer server may send kinds this console does not know yet: skip them, keep listening.
            Err(error) => leptos::logging::warn!("ignoring an unreadable live event: {error}"),
        }
    });
    let on_open = Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| {
        store.live.set(LiveStatus::Live);
        store.reload();
    });
    let weak = Rc::downgrade(inner);
    let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| {
        store.live.set(LiveStatus::Reconnecting);
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let closed = inner
            .connection
            .borrow()
            .as_ref()
            .is_some_and(|connection| connection.source.ready_state() == EventSource::CLOSED);
        if closed {
            // Not dropped here: a closure must not free itself while it runs.
            schedule_reconnect(weak.clone());
        }
    });

    let listening = source.add_event_listener_with_callback("change", on_change.as_ref().unchecked_ref()).is_ok();
    source.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    source.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    inner.connection.replace(Some(Connection {
        source,
        _on_change: on_change,
        _on_open: on_open,
        _on_error: on_error,
    }));
    if !listening {
        schedule_reconnect(Rc::downgrade(inner));
    }
}

fn schedule_reconnect(weak: Weak<Inner>) {
    set_timeout(
        move || {
            let Some(inner) = weak.upgrade() else {
                return;
            };
            if inner.stopped.get() {
                return;
            }
            inner.connection.borrow_mut().take();
            spawn_local(async move {
                // A refused stream is most often an expired session: find out before retrying.
                if let Err(error) = api_client::me().await {
                    inner.session.notice(&error);
                }
                connect(&inner);
            });
        },
        RECONNECT_AFTER,
    );
}
