//! `#[derive(ShmSafe)]` for shmkit. Use it through shmkit: `use
//! shmkit::ShmSafe;` brings both the trait and this derive. What it checks,
//! and what it cannot, is written on the `ShmSafe` trait's page.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{parse_macro_input, parse_quote, Data, DeriveInput, Error, Fields, GenericParam};

/// Implements `shmkit::ShmSafe` for a `#[repr(C)]` or
/// `#[repr(transparent)]` struct after checking, at compile time, that
/// every field's type is `ShmSafe` and that the struct has no `Drop`.
///
/// Refused with a compile error: enums and unions, structs with another
/// (or no) `repr`, `repr(packed)`, and lifetime parameters. Type
/// parameters get a `ShmSafe` bound.
#[proc_macro_derive(ShmSafe)]
pub fn derive_shm_safe(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(input)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

fn expand(mut input: DeriveInput) -> Result<TokenStream2, Error> {
    let fields = match &input.data {
        Data::Struct(s) => s.fields.clone(),
        Data::Enum(e) => {
            return Err(Error::new(
                e.enum_token.span,
                "ShmSafe cannot be derived for an enum: a peer may write a \
                 discriminant that names no variant, and every bit pattern must \
                 be a valid value; use a struct with an integer atomic instead",
            ))
        }
        Data::Union(u) => {
            return Err(Error::new(
                u.union_token.span,
                "ShmSafe cannot be derived for a union: use a `#[repr(C)]` \
                 struct, or write the `unsafe impl` by hand with its own proof",
            ))
        }
    };
    check_repr(&input)?;
    if let Some(lt) = input.generics.lifetimes().next() {
        return Err(Error::new(
            lt.span(),
            "ShmSafe cannot be derived for a type with a lifetime parameter: \
             what lives in shared memory holds no references and is 'static",
        ));
    }

    for param in &mut input.generics.params {
        if let GenericParam::Type(t) = param {
            t.bounds.push(parse_quote!(::shmkit::ShmSafe));
        }
    }
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();

    let field_types: Vec<_> = match &fields {
        Fields::Named(f) => f.named.iter().map(|f| &f.ty).collect(),
        Fields::Unnamed(f) => f.unnamed.iter().map(|f| &f.ty).collect(),
        Fields::Unit => Vec::new(),
    };
    let field_checks = field_types.iter().map(|ty| {
        quote_spanned! {ty.span()=>
            __shmkit_field_is_shm_safe::<#ty>();
        }
    });

    Ok(quote! {
        const _: () = {
            // Every field is ShmSafe: any bytes valid, no pointers, sound
            // to reach from `&Self` on many threads, no Drop.
            #[allow(dead_code, clippy::extra_unused_type_parameters)]
            fn __shmkit_fields #impl_generics () #where_clause {
                fn __shmkit_field_is_shm_safe<T: ::shmkit::ShmSafe>() {}
                #(#field_checks)*
            }

            // No Drop (regions never run destructors): a type with one
            // would have two impls of this trait.
            trait __ShmSafeTypeMustNotImplementDrop {}
            #[allow(drop_bounds)]
            impl<T: ::core::ops::Drop> __ShmSafeTypeMustNotImplementDrop for T {}
            impl #impl_generics __ShmSafeTypeMustNotImplementDrop for #name #ty_generics #where_clause {}

            // SAFETY: `#[repr(C)]` or `#[repr(transparent)]` (checked by the
            // derive), so the layout is fixed; every field is ShmSafe
            // (checked above), so any bytes make valid fields (padding
            // carries nothing), zero is each field's initial value, nothing
            // holds a pointer, and `&Self` reaches only what each field's
            // own impl makes sound; no Drop (checked above).
            unsafe impl #impl_generics ::shmkit::ShmSafe for #name #ty_generics #where_clause {}
        };
    })
}

/// `#[repr(C)]` or `#[repr(transparent)]`, possibly with `align(N)`, and
/// not `packed` (atomics need their alignment).
fn check_repr(input: &DeriveInput) -> Result<(), Error> {
    let mut fixed = false;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("repr")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("C") || meta.path.is_ident("transparent") {
                fixed = true;
            } else if meta.path.is_ident("packed") {
                return Err(meta.error(
                    "ShmSafe cannot be derived for a `repr(packed)` struct: \
                     its fields (atomics) would lose their alignment",
                ));
            }
            if meta.input.peek(syn::token::Paren) {
                // align(N), packed(N): the argument does not matter here.
                let args;
                syn::parenthesized!(args in meta.input);
                args.parse::<TokenStream2>()?;
            }
            Ok(())
        })?;
    }
    if fixed {
        return Ok(());
    }
    Err(Error::new(
        input.ident.span(),
        "ShmSafe needs `#[repr(C)]` or `#[repr(transparent)]`: Rust's default \
         layout may differ between two builds, and two processes built \
         differently would read each other's fields at the wrong offsets",
    ))
}
