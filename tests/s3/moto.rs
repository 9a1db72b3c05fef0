//! A real S3-compatible server on loopback for the tests: moto in server mode (installed
//! with pip from tests/s3/requirements.txt on first use), with IAM authentication enforced,
//! behind a TCP proxy that a test can take down and bring back without losing the bucket.

use std::io::{BufRead, BufReader};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// Where moto is installed (shared by all tests of one target directory).
fn install_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("moto-5.2.5")
}

static INSTALL: Mutex<()> = Mutex::new(());

/// Installs the pinned moto into the target directory once (atomically: a half-finished
/// install is never used).
fn install() -> PathBuf {
    let _guard = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = install_dir();
    if dir.join("moto").is_dir() {
        return dir;
    }
    let staging = dir.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/requirements.txt");
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--no-deps", "--target"])
        .arg(&staging)
        .arg("-r")
        .arg(&requirements)
        // Installing into a directory of our own never touches the system's packages.
        .env("PIP_BREAK_SYSTEM_PACKAGES", "1")
        .output()
        .expect("python3 is needed for the S3 tests");
    assert!(
        out.status.success(),
        "pip install of the S3 test server failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if std::fs::rename(&staging, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the S3 server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sets up IAM with the server's first (unauthenticated) actions: a user allowed
/// everything, and its access key.
const BOOTSTRAP: &str = r#"
import boto3, json, sys
kw = dict(endpoint_url=sys.argv[1], region_name="us-east-1",
          aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="vigil")
iam.put_user_policy(UserName="vigil", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="vigil")["AccessKey"]
print(key["AccessKeyId"], key["SecretAccessKey"])
"#;

/// A running moto server with one bucket, reached through [`Proxy`] at `endpoint`.
pub struct Moto {
    child: Child,
    log: PathBuf,
    pub proxy: Proxy,
    /// `http://127.0.0.1:PORT` of the proxy: what vigil is given.
    pub endpoint: String,
    /// `http://127.0.0.1:PORT` of the server itself.
    pub direct: String,
    pub key_id: String,
    pub secret: String,
    pub bucket: String,
    client: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
}

impl Moto {
    /// Starts moto with authentication enforced and creates `bucket`. The server's log
    /// goes to `dir/moto.log`.
    pub fn start(dir: &Path, bucket: &str) -> Self {
        let site = install();
        let port = free_port();
        let log = dir.join("moto.log");
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .env("PYTHONPATH", &site)
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_listening(port);
        let direct = format!("http://127.0.0.1:{port}");
        let out = Command::new("python3")
            .args(["-c", BOOTSTRAP, &direct])
            .env("PYTHONPATH", &site)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "IAM bootstrap failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let (key_id, secret) = text.trim().split_once(' ').unwrap();
        let (key_id, secret) = (key_id.to_string(), secret.to_string());
        let client: Arc<dyn ObjectStore> = Arc::new(
            AmazonS3Builder::new()
                .with_endpoint(&direct)
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_bucket_name(bucket)
                .with_access_key_id(&key_id)
                .with_secret_access_key(&secret)
                .build()
                .unwrap(),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let proxy = Proxy::start(port);
        let endpoint = format!("http://127.0.0.1:{}", proxy.port);
        let moto = Self {
            child,
            log,
            proxy,
            endpoint,
            direct,
            key_id,
            secret,
            bucket: bucket.to_string(),
            client,
            runtime,
        };
        moto.create_bucket();
        moto
    }

    fn create_bucket(&self) {
        self.boto3("s3.create_bucket(Bucket=a[0])", &[&self.bucket]);
    }

    /// Runs `statement` with `s3`, a boto3 client of this server with the test's
    /// credentials, and `a`, the arguments.
    fn boto3(&self, statement: &str, args: &[&str]) {
        let script = format!(
            "import boto3,sys; d=sys.argv[1:5]; a=sys.argv[5:]; s3=boto3.client('s3', endpoint_url=d[0], region_name='us-east-1', aws_access_key_id=d[1], aws_secret_access_key=d[2]); {statement}"
        );
        let out = Command::new("python3")
            .args(["-c", &script, &self.direct, &self.key_id, &self.secret, "-"])
            .args(args)
            .env("PYTHONPATH", install_dir())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The environment vigil needs to reach this server (credentials and endpoint).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret.clone()),
            ("VIGIL_S3_ENDPOINT".into(), self.endpoint.clone()),
        ]
    }

    /// Uploads an object (directly, not through the proxy).
    pub fn put(&self, key: &str, body: impl Into<Vec<u8>>) {
        let payload = PutPayload::from(body.into());
        self.runtime
            .block_on(
                self.client
                    .put(&object_store::path::Path::from(key), payload),
            )
            .unwrap();
    }

    /// Uploads an object with exactly this key, e.g. a console's "folder" marker `dir/`
    /// (which `object_store` paths cannot name), through boto3.
    pub fn put_raw(&self, key: &str, body: &str) {
        let put = "s3.put_object(Bucket=a[0], Key=a[1], Body=a[2].encode())";
        self.boto3(put, &[&self.bucket, key, body]);
    }

    /// Uploads an object in a (one-part) multipart upload: the same bytes as a plain upload
    /// get another ETag (`md5-of-part-md5s-1`).
    pub fn put_multipart(&self, key: &str, body: impl Into<Vec<u8>>) {
        let path = object_store::path::Path::from(key);
        let payload = PutPayload::from(body.into());
        self.runtime.block_on(async {
            let mut upload = self.client.put_multipart(&path).await.unwrap();
            upload.put_part(payload).await.unwrap();
            upload.complete().await.unwrap();
        });
    }

    /// Uploads many objects, 16 at a time (directly).
    pub fn put_many(&self, objects: Vec<(String, Vec<u8>)>) {
        use futures::StreamExt;
        let client = &self.client;
        self.runtime.block_on(
            futures::stream::iter(objects)
                .map(|(key, body)| async move {
                    client
                        .put(&object_store::path::Path::from(key), PutPayload::from(body))
                        .await
                        .unwrap();
                })
                .buffer_unordered(16)
                .collect::<Vec<()>>(),
        );
    }

    /// Deletes an object (directly).
    pub fn delete(&self, key: &str) {
        self.runtime
            .block_on(self.client.delete(&object_store::path::Path::from(key)))
            .unwrap();
    }

    /// Object downloads the server has answered so far (`GET /bucket/key`, not listings),
    /// counted from its request log.
    pub fn object_gets(&self) -> usize {
        self.requests(&format!("\"GET /{}/", self.bucket))
    }

    /// Listings the server has answered so far.
    pub fn listings(&self) -> usize {
        self.requests(&format!("\"GET /{}?list-type=2", self.bucket))
    }

    fn requests(&self, needle: &str) -> usize {
        let file = std::fs::File::open(&self.log).unwrap();
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy on loopback that can be taken down (connections refused, open ones cut) and
/// brought back on the same port.
pub struct Proxy {
    pub port: u16,
    upstream: u16,
    stop: Arc<AtomicBool>,
    /// Requests whose head contains this are answered `500` by the proxy itself.
    poison: Arc<Mutex<Option<String>>>,
    /// While set, connections are accepted and held without an answer (a hung server).
    hang: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start(upstream: u16) -> Self {
        let mut p = Self {
            port: free_port(),
            upstream,
            stop: Arc::default(),
            poison: Arc::default(),
            hang: Arc::default(),
            conns: Arc::default(),
            accept: None,
        };
        p.up();
        p
    }

    /// Accepts connections again (on the same port).
    pub fn up(&mut self) {
        self.stop.store(false, Ordering::SeqCst);
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let (stop, conns, upstream) = (self.stop.clone(), self.conns.clone(), self.upstream);
        let (poison, hang) = (self.poison.clone(), self.hang.clone());
        self.accept = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                if hang.load(Ordering::SeqCst) {
                    conns.lock().unwrap().push(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let mut list = conns.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                requests(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    poison.clone(),
                );
                pipe(server, client);
            }
        }));
    }

    /// Refuses new connections and cuts the open ones.
    pub fn down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            t.join().unwrap();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Holds every new connection without an answer (`true`), or serves again and cuts
    /// the held ones (`false`), as a server that hung and came back.
    pub fn hang(&self, on: bool) {
        self.hang.store(on, Ordering::SeqCst);
        if !on {
            for c in self.conns.lock().unwrap().drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
    }

    /// Answers every request that contains `needle` (e.g. `GET /bucket/key `) with a `500`,
    /// as a broken server would; `None` stops.
    pub fn fail_requests_for(&self, needle: Option<&str>) {
        *self.poison.lock().unwrap() = needle.map(str::to_string);
    }
}

/// Forwards a client's requests to the server, except poisoned ones: those get a `500`
/// and the connection is closed (requests on one HTTP/1.1 connection are sequential).
fn requests(mut client: TcpStream, mut server: TcpStream, poison: Arc<Mutex<Option<String>>>) {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let needle = poison.lock().unwrap().clone();
            if needle.is_some_and(|p| String::from_utf8_lossy(&buf[..n]).contains(&p)) {
                let _ = client.write_all(
                    b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                let _ = client.shutdown(Shutdown::Both);
                break;
            }
            if server.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = server.shutdown(Shutdown::Write);
    });
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}
