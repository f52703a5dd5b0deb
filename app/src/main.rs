//! Entry point of the console: reports panics to the browser console and mounts the app on `<body>`.

fn main() {
    console_error_panic_hook::set_once();
    wasm_bindgen_futures::spawn_local(async {
        // The Korean texts come in their own module: fetched before the first render, so that a
        // Korean console does not show English first.
        if app::i18n::initial_language() == app::i18n::Lang::Ko
            && let Err(error) = app::i18n::load_korean().await
        {
            leptos::logging::warn!("the Korean texts could not be downloaded; starting in English: {error}");
        }
        leptos::mount::mount_to_body(app::App);
    });
}
