// The partial images (.NAME.SESSION.part) a daemon that died mid-session left in its store,
// removed when a daemon starts. A session holds an flock on its partial file while it writes it
// (images/file_image.cpp), and the kernel drops that lock with the process however it ends: a
// file nobody holds is stale. Several daemons may share a store (e.g. several on one host): the
// files of their running sessions are locked, and left alone.
#pragma once

#include <string>
#include <vector>

namespace hymig::cli {

// Creates `dir` if missing and removes the stale partial images in it; returns their names.
// Error{io} when it exists but cannot be listed. A store that cannot be created (no permission: a
// daemon that receives only VMs) is not an error here: file images fail later, saying why.
std::vector<std::string> remove_stale_partial_images(const std::string& dir);

// True for the names FileTarget gives partial images: "." NAME "." 16 hex digits ".part".
bool is_partial_image_name(const std::string& name);

}  // namespace hymig::cli
