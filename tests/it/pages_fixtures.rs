//! Campaigns and results files for the page tests (`pages`, `browser`): built in a
//! temporary directory, and the binary run in it.
#![allow(dead_code)]
use std::path::PathBuf;
use std::time::Duration;

/// What a hostile cell tries inside a message body: set an attribute that the tests look for.
pub const BODY_SCRIPT: &str = "<script>document.body.setAttribute('data-pwned','script')</script>";
pub const BODY_IMG: &str = "<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">";
/// What a hostile cell tries in the page itself (a subject, the CSV values table).
pub const PAGE_IMG: &str = "<img src=x onerror=\"document.title='pwned'\">";
pub const PAGE_SCRIPT: &str = "<script>document.title='pwned'</script>";

/// Paths through the body's `if`s: `pro`, `enterprise`, anything else. Row 1 (pro) carries every
/// hostile value; row 3 is a second pro row, row 6 a second starter row (neither shown by
/// default); row 5 has a line break in a cell (a warning).
pub const ROWS_SHOWN_BY_DEFAULT: [u64; 4] = [1, 2, 4, 5];

pub struct Dir {
    pub dir: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    /// `campaign ARGS` in this directory.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("campaign").unwrap();
        cmd.current_dir(self.dir.path())
            .env_remove("INTERCOM_TOKEN")
            .timeout(Duration::from_secs(120));
        cmd
    }
}

fn csv_cell(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `campaign.toml`: an email whose body takes a path per plan and puts `note` in unescaped
/// (`| safe`), so that a hostile note reaches the body's frame as HTML.
pub fn variants_campaign() -> Dir {
    let d = Dir::new();
    d.write(
        "campaign.toml",
        r#"recipients = "people.csv"

[message]
message_type = "email"
template = "plain"
from = 394051
subject = "Welcome, {{ first_name }}"
body_file = "body.html"

[to]
type = "user"
id = "{{ id }}"
"#,
    );
    d.write(
        "body.html",
        r#"<p>Hi {{ first_name }},</p>
{% if plan == "pro" %}<p>Thanks for choosing Pro.</p>{% elif plan == "enterprise" %}<p>Your account manager will call.</p>{% else %}<p>You are on Starter.</p>{% endif %}
<div class="note">{{ note | safe }}</div>
"#,
    );
    let hostile_note = format!("{BODY_SCRIPT}{BODY_IMG}");
    let csv = [
        "id,first_name,email,company,plan,note".to_string(),
        format!(
            "u1,{},ada@example.com,{},pro,{}",
            csv_cell(PAGE_IMG),
            csv_cell(PAGE_SCRIPT),
            csv_cell(&hostile_note)
        ),
        "u2,Grace,grace@example.com,Cobol Works,starter,plain note".to_string(),
        "u3,Alan,alan@example.com,Bletchley,pro,another pro".to_string(),
        "u4,Hedy,hedy@example.com,Frequency,enterprise,".to_string(),
        "u5,Linus,linus@example.com,\"Kernel\nCo\",starter,".to_string(),
        "u6,Ken,ken@example.com,Unix,starter,".to_string(),
    ]
    .join("\n");
    d.write("people.csv", csv + "\n");
    d
}

/// The `data-row` numbers of the sections of a preview page, in order.
pub fn rows_on_page(html: &str) -> Vec<u64> {
    html.split("data-row=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].parse().unwrap())
        .collect()
}

pub const RESULTS_HEADER: &str =
    "row,recipient,status,message_id,http_status,error_code,error_message,request_id,attempts,finished_at";
