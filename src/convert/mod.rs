//! On-demand conversions served as virtual files: the COG writer and the grids it
//! georeferences. Nothing here does I/O.

pub mod backend;
pub(crate) mod blosc;
pub mod cf_time;
pub mod cog;
pub mod crs;
mod deflate;
pub mod grib;
pub mod grib_view;
pub mod nc_zarr;
pub mod preview;
mod tiff;
pub mod zarr_cog;
