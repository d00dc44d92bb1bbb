//! Objects of the data bucket in bulk: listing a prefix page by page, deleting up to 1,000 keys
//! per `DeleteObjects`, and writing one object as a stream (a multipart upload holding one part
//! in memory at a time, or a single `PutObject` when the whole object fits in one part).

use std::future::Future;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier, ServerSideEncryption};

use super::StoreError;

/// S3's limit per `DeleteObjects`.
pub const DELETE_BATCH: usize = 1000;
/// S3's smallest part (every part but the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Sends of a batch's failed keys before giving up (the caller's retry finishes the job).
const DELETE_ATTEMPTS: u32 = 4;

/// Deletes `keys` from `bucket`, 1,000 per request; keys S3 reports as failed are sent again.
/// Deleting an absent key succeeds (S3 says so), so a retried erasure finishes quietly.
pub async fn delete_objects(client: &Client, bucket: &str, keys: Vec<String>) -> Result<usize, StoreError> {
    let mut keys = keys;
    keys.sort();
    keys.dedup();
    let count = keys.len();
    for chunk in keys.chunks(DELETE_BATCH) {
        let mut pending: Vec<String> = chunk.to_vec();
        for attempt in 0..DELETE_ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            }
            let objects = pending
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build().map_err(|e| StoreError::corrupt("object key", e)))
                .collect::<Result<Vec<_>, _>>()?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| StoreError::corrupt("delete", e))?;
            let out = client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| StoreError::aws("DeleteObjects", e))?;
            pending = out.errors().iter().filter_map(|e| e.key().map(str::to_owned)).collect();
        }
        if !pending.is_empty() {
            return Err(StoreError::Aws {
                operation: "DeleteObjects",
                message: format!("{} objects not deleted after {DELETE_ATTEMPTS} attempts", pending.len()),
            });
        }
    }
    Ok(count)
}

/// Every key under `prefix`, one page (up to 1,000 keys) at a time, handed to `each`.
pub async fn for_each_page<F, Fut>(client: &Client, bucket: &str, prefix: &str, mut each: F) -> Result<(), StoreError>
where
    F: FnMut(Vec<String>) -> Fut,
    Fut: Future<Output = Result<(), StoreError>>,
{
    let mut pages = client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| StoreError::aws("ListObjectsV2", e))?;
        let keys: Vec<String> = page.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
        if !keys.is_empty() {
            each(keys).await?;
        }
    }
    Ok(())
}

/// Deletes every object under `prefix`; returns how many there were.
pub async fn delete_prefix(client: &Client, bucket: &str, prefix: &str) -> Result<usize, StoreError> {
    let mut deleted = 0;
    for_each_page(client, bucket, prefix, |keys| {
        deleted += keys.len();
        async move { delete_objects(client, bucket, keys).await.map(|_| ()) }
    })
    .await?;
    Ok(deleted)
}

/// Where the parts of a streamed object go.
pub trait PartSink: Send {
    /// The whole object in one request (it never outgrew one part).
    fn put_whole(&mut self, bytes: Vec<u8>) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Part `number` (from 1) of a multipart upload, started on the first call.
    fn put_part(&mut self, number: i32, bytes: Vec<u8>) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn complete(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Drops the parts uploaded so far (the bucket's lifecycle rule aborts what this misses).
    fn abort(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// One object written as a stream: bytes gather in a buffer of one part; each full part is
/// uploaded and dropped, so memory stays at one part whatever the object's size.
pub struct ObjectWriter<S: PartSink> {
    sink: S,
    part_size: usize,
    buffer: Vec<u8>,
    parts: i32,
    written: u64,
}

impl<S: PartSink> ObjectWriter<S> {
    pub fn new(sink: S, part_size: usize) -> Self {
        Self { sink, part_size, buffer: Vec::new(), parts: 0, written: 0 }
    }

    pub async fn write(&mut self, mut bytes: &[u8]) -> Result<(), StoreError> {
        self.written += bytes.len() as u64;
        // The buffer never grows past one part (no reallocation copying it): a write that
        // would overflow it fills the part, which goes up, and the rest starts the next one.
        while !bytes.is_empty() {
            if self.buffer.capacity() < self.part_size {
                // Address space only: pages count once they are written.
                self.buffer.reserve_exact(self.part_size - self.buffer.len());
            }
            let take = (self.part_size - self.buffer.len()).min(bytes.len());
            self.buffer.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buffer.len() >= self.part_size {
                self.flush_part().await?;
            }
        }
        Ok(())
    }

    async fn flush_part(&mut self) -> Result<(), StoreError> {
        self.parts += 1;
        let part = std::mem::take(&mut self.buffer);
        if let Err(e) = self.sink.put_part(self.parts, part).await {
            let _ = self.sink.abort().await;
            return Err(e);
        }
        Ok(())
    }

    /// Uploads what is left and completes the object; returns its size and how many parts it took
    /// (0: one `PutObject`).
    pub async fn finish(mut self) -> Result<(u64, i32), StoreError> {
        if self.parts == 0 {
            self.sink.put_whole(std::mem::take(&mut self.buffer)).await?;
            return Ok((self.written, 0));
        }
        if !self.buffer.is_empty() {
            self.flush_part().await?;
        }
        if let Err(e) = self.sink.complete().await {
            let _ = self.sink.abort().await;
            return Err(e);
        }
        Ok((self.written, self.parts))
    }

    /// Gives up on the object (an error elsewhere): uploaded parts are dropped.
    pub async fn abort(mut self) {
        if self.parts > 0 {
            let _ = self.sink.abort().await;
        }
    }

    /// Bytes held in memory right now.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }
}

/// An object of the bucket, encrypted at rest, tagged (e.g. for a lifecycle rule).
pub struct S3Part {
    client: Client,
    bucket: String,
    key: String,
    tagging: Option<String>,
    content_type: &'static str,
    upload_id: Option<String>,
    completed: Vec<CompletedPart>,
}

impl S3Part {
    pub fn new(client: Client, bucket: &str, key: &str, content_type: &'static str, tagging: Option<&str>) -> Self {
        Self {
            client,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            tagging: tagging.map(str::to_owned),
            content_type,
            upload_id: None,
            completed: Vec::new(),
        }
    }
}

impl S3Part {
    /// Whether the object exists as the multipart upload of all its parts (its ETag ends `-<parts>`).
    async fn is_complete(&self) -> Result<bool, StoreError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await
            .map_err(|e| StoreError::aws("HeadObject", e))?;
        let suffix = format!("-{}", self.completed.len());
        Ok(head.e_tag().is_some_and(|tag| tag.trim_matches('"').ends_with(&suffix)))
    }
}

impl PartSink for S3Part {
    async fn put_whole(&mut self, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .content_type(self.content_type)
            .set_tagging(self.tagging.clone())
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| StoreError::aws("PutObject", e))?;
        Ok(())
    }

    async fn put_part(&mut self, number: i32, bytes: Vec<u8>) -> Result<(), StoreError> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let out = self
                    .client
                    .create_multipart_upload()
                    .bucket(&self.bucket)
                    .key(&self.key)
                    .content_type(self.content_type)
                    .set_tagging(self.tagging.clone())
                    .server_side_encryption(ServerSideEncryption::Aes256)
                    .send()
                    .await
                    .map_err(|e| StoreError::aws("CreateMultipartUpload", e))?;
                let id = out.upload_id().ok_or_else(|| StoreError::Corrupt("multipart upload without an id".into()))?;
                self.upload_id = Some(id.to_owned());
                id.to_owned()
            }
        };
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| StoreError::aws("UploadPart", e))?;
        self.completed.push(CompletedPart::builder().part_number(number).set_e_tag(out.e_tag).build());
        Ok(())
    }

    async fn complete(&mut self) -> Result<(), StoreError> {
        let upload_id = self.upload_id.clone().ok_or_else(|| StoreError::Corrupt("no upload to complete".into()))?;
        let result = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(self.completed.clone())).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // A 200 whose body the SDK could not read (the emulator names the root element
            // `…Response` instead of `…Result`): whether the object is whole is asked directly.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 200) && self.is_complete().await? => {
                Ok(())
            }
            Err(e) => Err(StoreError::aws("CompleteMultipartUpload", e)),
        }
    }

    async fn abort(&mut self) -> Result<(), StoreError> {
        let Some(upload_id) = self.upload_id.take() else { return Ok(()) };
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| StoreError::aws("AbortMultipartUpload", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what reached it.
    #[derive(Default)]
    struct Recorder {
        whole: Option<usize>,
        parts: Vec<(i32, usize)>,
        completed: bool,
        aborted: bool,
        fail_part: Option<i32>,
    }

    impl PartSink for &mut Recorder {
        async fn put_whole(&mut self, bytes: Vec<u8>) -> Result<(), StoreError> {
            self.whole = Some(bytes.len());
            Ok(())
        }
        async fn put_part(&mut self, number: i32, bytes: Vec<u8>) -> Result<(), StoreError> {
            if self.fail_part == Some(number) {
                return Err(StoreError::Aws { operation: "UploadPart", message: "x".into() });
            }
            self.parts.push((number, bytes.len()));
            Ok(())
        }
        async fn complete(&mut self) -> Result<(), StoreError> {
            self.completed = true;
            Ok(())
        }
        async fn abort(&mut self) -> Result<(), StoreError> {
            self.aborted = true;
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_small_object_is_one_put() {
        let mut r = Recorder::default();
        let mut w = ObjectWriter::new(&mut r, 100);
        w.write(b"hello").await.unwrap();
        assert_eq!(w.finish().await.unwrap(), (5, 0));
        assert_eq!((r.whole, r.parts.len(), r.completed), (Some(5), 0, false));
    }

    #[tokio::test]
    async fn a_large_object_goes_part_by_part_and_memory_stays_at_one_part() {
        // GIVEN a part size of 100 bytes and 1,000 writes of 30
        let mut r = Recorder::default();
        let mut w = ObjectWriter::new(&mut r, 100);
        let mut most = 0;
        for _ in 0..1000 {
            w.write(&[b'x'; 30]).await.unwrap();
            most = most.max(w.buffered());
        }
        // THEN never more than one part is held, and every byte arrives in order, in full parts
        assert!(most < 100, "{most}");
        assert_eq!(w.finish().await.unwrap().0, 30_000);
        assert!(r.completed && r.whole.is_none());
        assert_eq!(r.parts.iter().map(|(_, n)| n).sum::<usize>(), 30_000);
        assert!(r.parts.iter().enumerate().all(|(i, (n, _))| *n == i as i32 + 1));
        assert!(r.parts.iter().all(|(_, len)| *len == 100), "every part is exactly one part long");
    }

    #[tokio::test]
    async fn a_failed_part_aborts_the_upload() {
        let mut r = Recorder { fail_part: Some(2), ..Recorder::default() };
        let mut w = ObjectWriter::new(&mut r, 10);
        w.write(&[0; 10]).await.unwrap();
        assert!(w.write(&[0; 10]).await.is_err());
        drop(w);
        assert!(r.aborted && !r.completed);
    }
}
