//! The API server's JSON answers without `metadata.managedFields`, cut out of the bytes before
//! they are decoded.
//!
//! Why: every object the API server sends carries its managed fields — one entry per field
//! manager, each a tree of every field that manager set — and on the objects an operator
//! watches they are often half the bytes. kube decodes each entry's `fieldsV1` into a
//! `serde_json::Value` (a map per level, a string per key), which is most of what decoding an
//! object allocates; the operator and the CLI then throw them away unread. Cutting them out
//! of the bytes is one scan, no allocation; decoding them is many. kubectl hides them too.
//!
//! Only the managed fields of an object's own metadata go: the root object's, a list's
//! `items[*]`, and a watch event's `object`. A `managedFields` key anywhere else (inside a
//! spec, e.g. a Proposal's patch or a Workflow's free-form arguments) is data and stays.
//!
//! - [`strip_managed_fields`]: pure, on one JSON document;
//! - [`TrimLayer`]: a tower layer for kube's client stack that applies it to each JSON
//!   document of a response body (one document, or one per line for watches);
//! - [`client`]: kube's default client stack with the layer, for a [`kube::Config`].
//!
//! A document the scanner cannot walk (not an object, malformed, cut short) passes unchanged:
//! the decoder then reports what is wrong with it, as it would have.

use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use memchr::memmem;

/// The key this module removes, with its quotes.
const MANAGED_FIELDS: &[u8] = b"\"managedFields\"";

/// The document without the managed fields of its object(s), or `None` when there are none
/// to cut (or the document is not a JSON object this scanner can walk).
#[must_use]
pub fn strip_managed_fields(doc: &[u8]) -> Option<Vec<u8>> {
    // Most documents (status patches answered, Events, Tables) have none: one memmem pass.
    memmem::find(doc, MANAGED_FIELDS)?;
    let mut cuts = Vec::new();
    let mut scan = Scanner {
        doc,
        cuts: &mut cuts,
    };
    let start = scan.ws(0);
    if doc.get(start) != Some(&b'{') {
        return None;
    }
    let end = scan.root(start)?;
    let tail = scan.ws(end);
    // Anything after the object but white space: not one document.
    if tail != doc.len() || cuts.is_empty() {
        return None;
    }
    let removed: usize = cuts.iter().map(|c| c.len()).sum();
    let mut out = Vec::with_capacity(doc.len() - removed);
    let mut at = 0;
    for cut in cuts {
        out.extend_from_slice(&doc[at..cut.start]);
        at = cut.end;
    }
    out.extend_from_slice(&doc[at..]);
    Some(out)
}

/// Each line of `chunk` stripped ([`strip_managed_fields`]); the chunk itself when no line
/// had any managed fields.
fn strip_lines(chunk: Bytes) -> Bytes {
    if memmem::find(&chunk, MANAGED_FIELDS).is_none() {
        return chunk;
    }
    let mut out = BytesMut::with_capacity(chunk.len());
    let mut changed = false;
    for line in chunk.split_inclusive(|b| *b == b'\n') {
        match strip_managed_fields(line) {
            Some(stripped) => {
                changed = true;
                out.extend_from_slice(&stripped);
            }
            None => out.extend_from_slice(line),
        }
    }
    if changed { out.freeze() } else { chunk }
}

/// A walk over one JSON document that records the byte ranges to cut. Every method takes the
/// index of a value's first byte and answers the index just past it, or `None` for bytes that
/// are not JSON (the caller then leaves the document alone).
struct Scanner<'a> {
    doc: &'a [u8],
    cuts: &'a mut Vec<Range<usize>>,
}

impl Scanner<'_> {
    /// The index of the first byte at or after `i` that is not JSON white space.
    fn ws(&self, mut i: usize) -> usize {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.doc.get(i) {
            i += 1;
        }
        i
    }

    /// Past the string starting at `i` (a `"`).
    fn string(&self, i: usize) -> Option<usize> {
        let mut at = i + 1;
        loop {
            let found = at + memchr::memchr2(b'"', b'\\', self.doc.get(at..)?)?;
            if self.doc[found] == b'"' {
                return Some(found + 1);
            }
            // An escape: the next byte is never the string's end.
            at = found + 2;
        }
    }

    /// Past the value starting at `i`, whatever it is.
    fn value(&self, i: usize) -> Option<usize> {
        match *self.doc.get(i)? {
            b'"' => self.string(i),
            b'{' | b'[' => self.container(i),
            _ => {
                // A number, true, false or null: up to the next delimiter.
                let rest = self.doc.get(i..)?;
                let len = rest
                    .iter()
                    .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                    .unwrap_or(rest.len());
                (len > 0).then_some(i + len)
            }
        }
    }

    /// Past the object or array starting at `i`, skipped whole (strings included, so that a
    /// bracket inside one does not count).
    fn container(&self, i: usize) -> Option<usize> {
        let mut depth = 0usize;
        let mut at = i;
        loop {
            match *self.doc.get(at)? {
                b'"' => {
                    at = self.string(at)?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(at + 1);
                    }
                }
                _ => {}
            }
            at += 1;
        }
    }

    /// Walks the members of the object starting at `i`, calling `member(self, key, value)` with
    /// the key's bytes (without quotes) and the index of the value's first byte; `member`
    /// answers the index past the value, and whether the member is cut (with its comma).
    fn members(
        &mut self,
        i: usize,
        mut member: impl FnMut(&mut Self, &[u8], usize) -> Option<Member>,
    ) -> Option<usize> {
        let mut at = self.ws(i + 1);
        if self.doc.get(at) == Some(&b'}') {
            return Some(at + 1);
        }
        // Just past the previous member's value: where its comma starts.
        let mut after_previous: Option<usize> = None;
        loop {
            if self.doc.get(at) != Some(&b'"') {
                return None;
            }
            let key_start = at;
            let key_end = self.string(at)?;
            let doc = self.doc;
            let key = &doc[key_start + 1..key_end - 1];
            at = self.ws(key_end);
            if self.doc.get(at) != Some(&b':') {
                return None;
            }
            let value_start = self.ws(at + 1);
            let (value_end, cut) = match member(self, key, value_start)? {
                Member::Keep(end) => (end, false),
                Member::Cut(end) => (end, true),
            };
            at = self.ws(value_end);
            let last = match self.doc.get(at) {
                Some(b',') => false,
                Some(b'}') => true,
                _ => return None,
            };
            if cut {
                match after_previous {
                    // `, "managedFields": […]` after an earlier member.
                    Some(previous) => self.cuts.push(previous..value_end),
                    // The first member: `"managedFields": […],` up to the next key.
                    None if !last => self.cuts.push(key_start..self.ws(at + 1)),
                    // The only member.
                    None => self.cuts.push(key_start..value_end),
                }
                // A cut first member leaves the next one first; otherwise the next comma
                // follows this value.
                if after_previous.is_some() {
                    after_previous = Some(value_end);
                }
            } else {
                after_previous = Some(value_end);
            }
            if last {
                return Some(at + 1);
            }
            at = self.ws(at + 1);
        }
    }

    /// The document's root: an object itself, a list (`items`) or a watch event (`object`).
    fn root(&mut self, i: usize) -> Option<usize> {
        self.members(i, |scan, key, at| match (key, scan.doc.get(at)) {
            (b"metadata", Some(b'{')) => scan.metadata(at).map(Member::Keep),
            (b"object", Some(b'{')) => scan.object(at).map(Member::Keep),
            (b"items", Some(b'[')) => scan.items(at).map(Member::Keep),
            _ => scan.value(at).map(Member::Keep),
        })
    }

    /// An object: only its `metadata` is walked.
    fn object(&mut self, i: usize) -> Option<usize> {
        self.members(i, |scan, key, at| match (key, scan.doc.get(at)) {
            (b"metadata", Some(b'{')) => scan.metadata(at).map(Member::Keep),
            _ => scan.value(at).map(Member::Keep),
        })
    }

    /// A list's items: each object walked.
    fn items(&mut self, i: usize) -> Option<usize> {
        let mut at = self.ws(i + 1);
        if self.doc.get(at) == Some(&b']') {
            return Some(at + 1);
        }
        loop {
            let end = match self.doc.get(at) {
                Some(b'{') => self.object(at)?,
                Some(_) => self.value(at)?,
                None => return None,
            };
            at = self.ws(end);
            match self.doc.get(at) {
                Some(b',') => at = self.ws(at + 1),
                Some(b']') => return Some(at + 1),
                _ => return None,
            }
        }
    }

    /// An object's metadata: `managedFields` is cut.
    fn metadata(&mut self, i: usize) -> Option<usize> {
        self.members(i, |scan, key, at| {
            let end = scan.value(at)?;
            Some(if key == b"managedFields" {
                Member::Cut(end)
            } else {
                Member::Keep(end)
            })
        })
    }
}

/// What becomes of an object member, with the index past its value.
enum Member {
    Keep(usize),
    Cut(usize),
}

/// A tower layer for kube's client stack: JSON response bodies lose the managed fields of
/// their objects ([`strip_managed_fields`]) before kube decodes them. Other bodies (protocol
/// upgrades for port-forward and exec, logs, anything not JSON) pass untouched.
///
/// ```no_run
/// # async fn f(config: kube::Config) -> kube::Result<kube::Client> {
/// let client = kube::client::ClientBuilder::try_from(config)?
///     .with_layer(&kgents_logos::wire::TrimLayer)
///     .build();
/// # Ok(client) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TrimLayer;

impl<S> tower_layer::Layer<S> for TrimLayer {
    type Service = Trim<S>;

    fn layer(&self, inner: S) -> Trim<S> {
        Trim { inner }
    }
}

/// The service [`TrimLayer`] makes.
#[derive(Debug, Clone)]
pub struct Trim<S> {
    inner: S,
}

impl<S, RequestBody, ResponseBody> tower_service::Service<Request<RequestBody>> for Trim<S>
where
    S: tower_service::Service<Request<RequestBody>, Response = Response<ResponseBody>>,
{
    type Response = Response<TrimBody<ResponseBody>>;
    type Error = S::Error;
    type Future = futures::future::MapOk<
        S::Future,
        fn(Response<ResponseBody>) -> Response<TrimBody<ResponseBody>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        use futures::TryFutureExt;
        self.inner.call(request).map_ok(trim_response)
    }
}

/// Wraps a response's body; only JSON is trimmed.
fn trim_response<B>(response: Response<B>) -> Response<TrimBody<B>> {
    let json = response.status() != http::StatusCode::SWITCHING_PROTOCOLS
        && response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("json"));
    response.map(|inner| TrimBody {
        inner,
        trim: json,
        buffer: BytesMut::new(),
        ended: false,
        held: None,
    })
}

/// A response body whose JSON documents lose their managed fields. Documents are whole lines
/// (a watch sends one event per line; any other answer is one document): a partial line is
/// held until its end arrives, which kube's decoder would wait for too.
#[derive(Debug)]
pub struct TrimBody<B> {
    inner: B,
    /// Whether the body is JSON (else frames pass as they come).
    trim: bool,
    /// The bytes of a line not yet complete.
    buffer: BytesMut,
    /// The inner body has ended; the buffer is flushed next.
    ended: bool,
    /// A trailers frame that arrived while a partial line was held: sent after it.
    held: Option<Frame<Bytes>>,
}

impl<B> Body for TrimBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        if !this.trim {
            return Pin::new(&mut this.inner).poll_frame(cx);
        }
        loop {
            if this.ended || this.held.is_some() {
                if !this.buffer.is_empty() {
                    let rest = this.buffer.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(strip_lines(rest)))));
                }
                if let Some(frame) = this.held.take() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                if this.ended {
                    return Poll::Ready(None);
                }
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        let Some(last) = memchr::memrchr(b'\n', &data) else {
                            this.buffer.extend_from_slice(&data);
                            continue;
                        };
                        let complete = if this.buffer.is_empty() && last + 1 == data.len() {
                            // The common case: whole lines, nothing held. No copy.
                            data
                        } else {
                            this.buffer.extend_from_slice(&data);
                            let upto = this.buffer.len() - (data.len() - last - 1);
                            this.buffer.split_to(upto).freeze()
                        };
                        return Poll::Ready(Some(Ok(Frame::data(strip_lines(complete)))));
                    }
                    Err(trailers) => this.held = Some(trailers),
                },
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => this.ended = true,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        if self.trim {
            self.ended && self.buffer.is_empty() && self.held.is_none()
        } else {
            self.inner.is_end_stream()
        }
    }

    fn size_hint(&self) -> SizeHint {
        if self.trim {
            // Fewer bytes than the inner body's, by an amount not known in advance.
            let mut hint = SizeHint::new();
            if let Some(upper) = self.inner.size_hint().upper() {
                hint.set_upper(upper + self.buffer.len() as u64);
            }
            hint
        } else {
            self.inner.size_hint()
        }
    }
}

/// A client for `config` with kube's default stack and [`TrimLayer`]: what the operator and
/// the CLI use, since neither reads managed fields.
///
/// # Errors
/// What kube refuses when it builds the client from `config` (TLS or auth configuration).
pub fn client(config: kube::Config) -> kube::Result<kube::Client> {
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&TrimLayer)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn strip(value: &Value) -> Value {
        let text = value.to_string();
        match strip_managed_fields(text.as_bytes()) {
            Some(out) => serde_json::from_slice(&out).expect("stripped output is JSON"),
            None => value.clone(),
        }
    }

    fn managed() -> Value {
        json!([{"manager": "kgents", "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:x\"}": {}}}}])
    }

    #[test]
    fn an_objects_managed_fields_go_wherever_they_stand_among_its_metadata() {
        for position in 0..3 {
            let mut meta = serde_json::Map::new();
            let keys = ["name", "uid", "resourceVersion"];
            for (i, key) in keys.iter().enumerate() {
                if i == position {
                    meta.insert("managedFields".into(), managed());
                }
                meta.insert((*key).into(), json!(format!("v{i}")));
            }
            let object = json!({"kind": "Agent", "metadata": meta, "spec": {"x": 1}});
            let stripped = strip(&object);
            assert_eq!(stripped["metadata"].get("managedFields"), None);
            assert_eq!(stripped["metadata"]["uid"], "v1");
            assert_eq!(stripped["spec"], json!({"x": 1}));
        }
        let only = json!({"metadata": {"managedFields": managed()}});
        assert_eq!(strip(&only), json!({"metadata": {}}));
    }

    #[test]
    fn lists_and_watch_events_lose_their_objects_managed_fields_only() {
        let item = json!({"metadata": {"name": "a", "managedFields": managed()},
            "spec": {"patch": {"metadata": {"managedFields": [1]}}}});
        let list = json!({"kind": "AgentList", "metadata": {"resourceVersion": "9"},
            "items": [item.clone(), item.clone()]});
        let stripped = strip(&list);
        for item in stripped["items"].as_array().expect("items") {
            assert_eq!(item["metadata"], json!({"name": "a"}));
            // Data that happens to use the name stays.
            assert_eq!(
                item["spec"]["patch"]["metadata"]["managedFields"],
                json!([1])
            );
        }
        let event = json!({"type": "MODIFIED", "object": item});
        assert_eq!(strip(&event)["object"]["metadata"], json!({"name": "a"}));
    }

    #[test]
    fn documents_it_cannot_walk_pass_unchanged() {
        for doc in [
            &b"[1, 2]"[..],
            b"{\"metadata\": {\"managedFields\": [1]",
            b"{\"metadata\": {\"managedFields\": [1]}} trailing",
            b"{\"metadata\": {\"managedFields\" [1]}}",
            b"not json \"managedFields\"",
            b"{\"a\": 1}",
        ] {
            assert_eq!(
                strip_managed_fields(doc),
                None,
                "{}",
                String::from_utf8_lossy(doc)
            );
        }
    }

    #[test]
    fn lines_are_stripped_one_by_one() {
        let event = |n: u32| {
            format!(
                "{}\n",
                json!({"type": "ADDED", "object": {"metadata": {"name": n, "managedFields": managed()}}})
            )
        };
        let chunk = Bytes::from(format!(
            "{}{{\"type\":\"BOOKMARK\"}}\n{}",
            event(1),
            event(2)
        ));
        let out = strip_lines(chunk);
        let lines: Vec<Value> = out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("a line is JSON"))
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["object"]["metadata"], json!({"name": 1}));
        assert_eq!(lines[2]["object"]["metadata"], json!({"name": 2}));
    }

    #[tokio::test]
    async fn a_body_split_anywhere_is_trimmed_as_whole_lines() {
        use http_body_util::{BodyExt, StreamBody};
        let text = format!(
            "{}\n{}\n",
            json!({"type": "ADDED", "object": {"metadata": {"name": "a", "managedFields": managed()}}}),
            json!({"type": "DELETED", "object": {"metadata": {"managedFields": managed(), "name": "b"}}})
        );
        for split in [1, 7, 40, text.len() / 2, text.len() - 1] {
            let parts: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = text
                .as_bytes()
                .chunks(split)
                .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                .collect();
            let response = Response::builder()
                .header("content-type", "application/json")
                .body(StreamBody::new(futures::stream::iter(parts)))
                .expect("response");
            let body = trim_response(response).into_body();
            let bytes = body.collect().await.expect("collect").to_bytes();
            let expected = format!(
                "{}\n{}\n",
                json!({"type": "ADDED", "object": {"metadata": {"name": "a"}}}),
                json!({"type": "DELETED", "object": {"metadata": {"name": "b"}}})
            );
            assert_eq!(
                String::from_utf8_lossy(&bytes),
                expected,
                "chunks of {split}"
            );
        }
    }

    #[tokio::test]
    async fn bodies_that_are_not_json_pass_untouched() {
        use http_body_util::{BodyExt, Full};
        let text = "{\"metadata\":{\"managedFields\":[1]}}";
        let response = Response::builder()
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from(text)))
            .expect("response");
        let bytes = trim_response(response)
            .into_body()
            .collect()
            .await
            .expect("collect")
            .to_bytes();
        assert_eq!(bytes, text);
    }

    /// Any JSON value, a few levels deep, with keys that include the ones the scanner looks
    /// for (so they also appear where they must be left alone).
    fn any_json() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("metadata".to_owned()),
            Just("managedFields".to_owned()),
            Just("items".to_owned()),
            Just("object".to_owned()),
            "[a-z\"\\\\{}\\[\\], ]{0,6}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-z\"\\\\{}\\[\\]:, \n]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((key.clone(), inner), 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    /// What stripping must give, computed on the parsed value.
    fn expected(value: &Value) -> Value {
        fn object(o: &mut serde_json::Map<String, Value>) {
            if let Some(Value::Object(meta)) = o.get_mut("metadata") {
                meta.remove("managedFields");
            }
        }
        let mut value = value.clone();
        if let Value::Object(root) = &mut value {
            object(root);
            if let Some(Value::Object(o)) = root.get_mut("object") {
                object(o);
            }
            if let Some(Value::Array(items)) = root.get_mut("items") {
                for item in items {
                    if let Value::Object(o) = item {
                        object(o);
                    }
                }
            }
        }
        value
    }

    proptest! {
        /// Stripping equals removing `metadata.managedFields` from the parsed root, its
        /// `object` and its `items`, and nothing else; compact or pretty-printed.
        #[test]
        fn stripping_removes_exactly_the_objects_managed_fields(value in any_json(), pretty in any::<bool>()) {
            let text = if pretty {
                serde_json::to_string_pretty(&value).expect("serialise")
            } else {
                value.to_string()
            };
            let out = strip_managed_fields(text.as_bytes());
            let parsed: Value = match &out {
                Some(bytes) => serde_json::from_slice(bytes).expect("stripped output is JSON"),
                None => value.clone(),
            };
            prop_assert_eq!(&parsed, &expected(&value));
            // Nothing to cut: no copy.
            if expected(&value) == value {
                prop_assert!(out.is_none());
            }
        }

        /// Any bytes at all: no panic, and what comes out is never longer.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            if let Some(out) = strip_managed_fields(&bytes) {
                prop_assert!(out.len() < bytes.len());
            }
        }
    }
}
