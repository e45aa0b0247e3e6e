#pragma once
// The page brainmri serve shows: one self-contained HTML document (no external assets), built into
// the binary from src/serve/page.html.

#include <string>

namespace brainmri::serve {

const std::string& page_html();

}  // namespace brainmri::serve
