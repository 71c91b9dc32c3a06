//! `verse web`: where the daemon serves the UI.

use anyhow::{Result, bail};
use verse_api::{Client, WebInfo};

pub async fn print_url(client: &Client) -> Result<()> {
    let info: WebInfo = client.get("/v1/web").await?;
    match (info.url, info.error) {
        (Some(url), _) => {
            println!("{url}");
            Ok(())
        }
        (None, Some(error)) => bail!("the daemon does not serve the web UI: {error}"),
        (None, None) => bail!("the daemon does not serve the web UI"),
    }
}
